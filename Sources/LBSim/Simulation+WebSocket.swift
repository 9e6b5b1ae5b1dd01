import LBConfig
import LBCore

/// A client's WebSocket through the proxy, when the load is WebSocket messages (`websocket: true`).
struct SimWebSocket {
    /// The backend it is open to, or -1 when it is not open.
    var backend: Int32 = -1
    /// Messages echoed on it.
    var echoes = 0
    /// Its messages on the wire, by request slot.
    var inFlight: [Int32] = []
}

/// WebSocket load as `loadgen -url ws://` sends it and the proxy tunnels it: each client opens one
/// WebSocket, through the proxy's pick, and sends every message on it; the backend echoes each at once
/// (its latency model applies to plain HTTP). The connection counts as one request in flight to its
/// backend for its whole life. A killed backend's connections close, losing the messages on the wire
/// (`closed`); each client's next message opens a new one, which the picker places again. Opening and
/// closing are events (`ws_open`, `ws_close`), as the load generator records them.
extension Simulation {
    /// The message in `slot` from `client` leaves on its WebSocket, opened first if it is not.
    mutating func sendMessage<P: Picker>(_ slot: Int, client: Int, _ picker: inout P) {
        self.requests[slot].proxyDone = true
        if self.webSockets[client].backend < 0 && !self.open(client, &picker) {
            // No backend took the handshake: the client's message fails with it.
            self.clientFinishes(slot, status: 503, error: nil)
            return
        }
        let backend = Int(self.webSockets[client].backend)
        self.requests[slot].backend = Int32(backend)
        self.requests[slot].answeredByBackend = true
        self.requests[slot].status = 101
        guard !self.backends[backend].stopped else {
            // A stopped backend reads nothing: the message waits until the client gives up on it.
            return
        }
        self.webSockets[client].echoes += 1
        self.webSockets[client].inFlight.append(Int32(slot))
        let roundTrip = self.draw(self.clientToProxy) + self.draw(self.proxyToBackend) + self.draw(self.proxyToBackend) + self.draw(self.proxyToClient)
        if roundTrip <= 0 {
            self.echoReachesClient(slot)
        } else {
            self.events.schedule(.answerReachesClient, slot, at: self.now + roundTrip)
        }
    }

    /// An echo is back at its client.
    mutating func echoReachesClient(_ slot: Int) {
        let client = Int(self.requests[slot].client)
        self.webSockets[client].inFlight.removeAll { $0 == Int32(slot) }
        self.answerReachesClient(slot)
    }

    /// Opens `client`'s WebSocket: the proxy picks for the handshake, and one that finds its backend
    /// refusing goes to another while the retry policy allows (a refused connect is requeued).
    private mutating func open<P: Picker>(_ client: Int, _ picker: inout P) -> Bool {
        let pick = PickRequest(now: Instant(nanoseconds: self.now), clientKey: self.clientKeys[client], hashKey: self.clientKeys[client])
        var refused: [ObjectIdentifier] = []
        for _ in 0...self.service.retries.maxRetries {
            let states = self.inService.map { self.backends[$0].state }
            guard let chosen = picker.pick(pick, avoiding: refused, count: states.count, state: { states[$0] }) else { return false }
            let backend = self.inService[chosen]
            guard self.backends[backend].running else {
                refused.append(ObjectIdentifier(self.backends[backend].state))
                continue
            }
            self.backends[backend].state.requestStarted()
            self.webSockets[client] = SimWebSocket(backend: Int32(backend))
            self.output.event("ws_open", subject: self.clientAddresses[client], detail: ["backend": self.backends[backend].spec.name], at: self.now)
            return true
        }
        return false
    }

    /// Closes `client`'s WebSocket: the messages on the wire are lost (`closed`).
    mutating func close(_ client: Int) {
        let backend = Int(self.webSockets[client].backend)
        guard backend >= 0 else { return }
        for slot in self.webSockets[client].inFlight where !self.requests[Int(slot)].clientDone {
            self.clientFinishes(Int(slot), status: nil, error: .connectionClosed)
        }
        self.backends[backend].state.requestFinished()
        self.output.event(
            "ws_close", subject: self.clientAddresses[client],
            detail: ["backend": self.backends[backend].spec.name, "messages": "\(self.webSockets[client].echoes)"], at: self.now
        )
        self.webSockets[client] = SimWebSocket()
    }

    /// A kill closes every WebSocket open to backend `index`.
    mutating func closeWebSockets(to index: Int) {
        for client in self.webSockets.indices where self.webSockets[client].backend == Int32(index) {
            self.close(client)
        }
    }
}
