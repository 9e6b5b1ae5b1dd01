public import LBConfig
import LBCore

/// What every event loop of the proxy shares: the configuration, the router, the header rewriter, and
/// one ``BackendState`` per backend, whose atomics carry what must be global (requests in flight,
/// health, ejection, draining) so that least-connections and P2C on one loop see the load of all.
public final class ProxyRuntime: Sendable {
    /// The configuration it runs.
    public let configuration: ProxyConfiguration
    /// The services, in configuration order.
    let services: [ServiceRuntime]
    let router: ServiceRouter
    let forwarded: ForwardedHeaders
    /// How long a client connection may sit idle between requests: the longest `client-idle` of the
    /// services (which service a connection's next request is for is not known until it comes).
    let clientIdleNanos: UInt64

    /// The runtime of `configuration`; it must have passed ``ProxyConfiguration/problems()``.
    public init(configuration: ProxyConfiguration) {
        self.configuration = configuration
        self.services = configuration.services.map(ServiceRuntime.init)
        self.router = ServiceRouter(services: configuration.services)
        self.forwarded = ForwardedHeaders(trustedProxies: configuration.trustedProxies)
        let idle = configuration.services.map(\.timeouts.clientIdle).max() ?? .seconds(60)
        self.clientIdleNanos = UInt64(max(1, idle.nanoseconds))
    }
}

/// One service at run time: its settings and its backends' shared state.
final class ServiceRuntime: Sendable {
    let settings: Service
    let backends: [BackendRuntime]

    init(_ settings: Service) {
        self.settings = settings
        self.backends = settings.backends.map { BackendRuntime(spec: $0, state: BackendState(name: $0.name)) }
    }

    /// The snapshot a picker is built from.
    var pickerSnapshot: [Backend] {
        self.backends.map { Backend(state: $0.state, weight: Double($0.spec.weight)) }
    }
}

/// A backend at run time.
struct BackendRuntime: Sendable {
    let spec: BackendSpec
    let state: BackendState
}
