public import LBCore

/// What `lbctl sim` needs beyond what a real run configures: how long a request spends between the
/// parts a real run has on its machine (the `sim:` section of a scenario).
///
/// Each is one way and sampled per request from a latency model, like a backend's latency. They are
/// measured, not guessed: a real run's `proxy_requests` beside its `requests` gives them (the client's
/// send to the proxy's pick, the pick to the backend's start, the answer at the proxy to the client's
/// done).
public struct SimulationDelays: Sendable, Hashable {
    /// From the client's send to the proxy's pick.
    public var clientToProxy: LatencyModel
    /// From the pick to the backend's start, and from the backend's answer back to the proxy, each.
    public var proxyToBackend: LatencyModel
    /// From the backend's answer at the proxy to the client's done.
    public var proxyToClient: LatencyModel

    /// No delay anywhere: the parts meet in the same instant.
    public init(clientToProxy: LatencyModel = .fixed(.zero), proxyToBackend: LatencyModel = .fixed(.zero), proxyToClient: LatencyModel = .fixed(.zero)) {
        self.clientToProxy = clientToProxy
        self.proxyToBackend = proxyToBackend
        self.proxyToClient = proxyToClient
    }

    static let keys = ["client-proxy", "proxy-backend", "proxy-client"]

    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["delays"])
        self.init()
        guard let delays = map["delays"] else { return }
        let delayMap = try delays.mapping(keys: Self.keys)
        if let value = delayMap["client-proxy"] { self.clientToProxy = try value.parsed(LatencyModel.init(parsing:)) }
        if let value = delayMap["proxy-backend"] { self.proxyToBackend = try value.parsed(LatencyModel.init(parsing:)) }
        if let value = delayMap["proxy-client"] { self.proxyToClient = try value.parsed(LatencyModel.init(parsing:)) }
    }
}
