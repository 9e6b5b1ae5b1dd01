/// What a WebSocket load cannot carry, for loadgen's `-url ws://…` and a scenario's `websocket: true`
/// alike: each client opens one WebSocket with GET and keeps it for the run, and the messages it
/// sends on it carry no headers.
public enum WebSocketLoad {
    /// Why a WebSocket load cannot use `method`, or nil when it can (GET, in any case).
    public static func methodProblem(_ method: String) -> String? {
        method.uppercased() == "GET" ? nil : "a WebSocket opens with GET"
    }

    /// Why a WebSocket load cannot send request keys: a key rides in a request header (`X-LBLab-Key`).
    public static let keysProblem = "sends X-LBLab-Key with each request, and a WebSocket's messages have no headers"
}
