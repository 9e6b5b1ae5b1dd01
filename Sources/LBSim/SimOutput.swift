import LBConfig
import LBCore

/// Where a simulated run's records go: into the tally always, and into the sink as rows when the run
/// keeps records, gathered in chunks as the proxy's event loops hand theirs over. The sink takes the
/// backends, the events and the samples in any case.
struct SimOutput {
    let sink: (any RecordSink)?
    let keepsRecords: Bool
    /// What the run stores instead of rows, when it has a sink and keeps none.
    var totals: SimTotals?
    private var requests: [RequestRecord] = []
    private var proxyRequests: [ProxyRequestRecord] = []
    private static let chunk = 4_096

    init(sink: (any RecordSink)?, keepsRecords: Bool, totals: SimTotals) {
        self.sink = sink
        self.keepsRecords = keepsRecords && sink != nil
        self.totals = sink != nil && !keepsRecords ? totals : nil
        if self.keepsRecords {
            self.requests.reserveCapacity(Self.chunk)
            self.proxyRequests.reserveCapacity(Self.chunk)
        }
    }

    /// The backends (ids 1…n in the scenario's order) and the load's first phases.
    func begin(backends: [ScenarioBackend], warmup: Int64) {
        guard let sink = self.sink else { return }
        for (index, backend) in backends.enumerated() {
            sink.record(BackendRecord(id: index + 1, name: backend.name, address: "sim", weight: Double(backend.weight), specJSON: backend.specJSON(container: "sim")))
        }
        sink.record(RunEvent(tMicros: 0, kind: "phase", subject: "load"))
        sink.record(RunEvent(tMicros: warmup / 1_000, kind: "phase", subject: "measure"))
    }

    mutating func phase(_ name: String, at nanos: Int64) {
        if name == "drain" { self.totals?.drained(at: nanos) }
        self.sink?.record(RunEvent(tMicros: nanos / 1_000, kind: "phase", subject: name))
    }

    mutating func event(_ kind: String, subject: String, detail: [String: String], at nanos: Int64) {
        guard let sink = self.sink else { return }
        self.totals?.changed(kind, at: nanos)
        let json = detail.isEmpty ? nil : "{" + detail.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",") + "}"
        sink.record(RunEvent(tMicros: nanos / 1_000, kind: kind, subject: subject, detailJSON: json))
    }

    func sample(_ sample: ResourceSample, tally: inout SimTally) {
        tally.countInFlight(sample.inFlight ?? 0, at: sample.tMicros * 1_000)
        self.sink?.record(sample)
    }

    /// The client is done with `request` at `done`: answered with `status`, or failed with `error`.
    @inline(__always)
    mutating func clientDone(_ request: SimRequest, done: Int64, status: Int?, error: RequestFailure?, tally: inout SimTally, client addresses: [String]) {
        let backend = request.answeredByBackend ? Int(request.backend) : -1
        tally.count(
            intended: request.intended, done: done, status: status, failedWithoutAnswer: error != nil,
            backend: error == nil ? backend : -1, serviceNanos: request.service
        )
        self.totals?.clientDone(intended: request.intended, done: done, status: status, error: error, backend: backend, key: request.key)
        guard self.keepsRecords else { return }
        let intended = request.intended / 1_000
        self.requests.append(
            RequestRecord(
                id: request.id, clientID: request.client, clientIP: addresses[Int(request.client)],
                intendedMicros: intended, sentMicros: intended, firstByteMicros: error == nil ? done / 1_000 : nil,
                doneMicros: done / 1_000, status: status, backendID: backend >= 0 ? backend + 1 : nil,
                bytesIn: error == nil ? Self.bodyBytes(status) : 0, bytesOut: 0, error: error,
                key: request.key >= 0 ? Int(request.key) : nil
            )
        )
        if self.requests.count >= Self.chunk { self.flushRequests() }
    }

    /// The proxy is done with `request`: answered by its last attempt's backend, or by itself.
    @inline(__always)
    mutating func proxyDone(_ request: SimRequest, client addresses: [String]) {
        self.totals?.proxyDone(received: request.received, attempts: Int(request.attempts))
        guard self.keepsRecords else { return }
        func micros(_ nanos: Int64) -> Int64? { nanos >= 0 ? nanos / 1_000 : nil }
        let backend = request.backend >= 0 ? Int(request.backend) + 1 : nil
        self.proxyRequests.append(
            ProxyRequestRecord(
                requestID: request.id, receivedMicros: request.received / 1_000, pickedMicros: micros(request.picked),
                backendID: backend, upstreamStartMicros: micros(request.upstreamStart), upstreamDoneMicros: micros(request.upstreamDone),
                status: Int(request.status), attempts: Int(request.attempts),
                retriedFrom: request.retriedFrom >= 0 ? Int(request.retriedFrom) + 1 : nil, clientIP: addresses[Int(request.client)]
            )
        )
        if self.proxyRequests.count >= Self.chunk { self.flushProxyRequests() }
    }

    /// The body bytes `lbctl backend` answers with: `xx` for 200, `synthetic error\n`, `queue full\n`.
    private static func bodyBytes(_ status: Int?) -> Int64 {
        switch status {
        case 200: 2
        case 500: 16
        case 503: 11
        default: 0
        }
    }

    mutating func flush() {
        self.flushRequests()
        self.flushProxyRequests()
    }

    private mutating func flushRequests() {
        guard !self.requests.isEmpty else { return }
        self.sink?.waitForRoom(self.requests.count)
        self.sink?.record(contentsOf: self.requests)
        self.requests.removeAll(keepingCapacity: true)
    }

    private mutating func flushProxyRequests() {
        guard !self.proxyRequests.isEmpty else { return }
        self.sink?.waitForRoom(self.proxyRequests.count)
        self.sink?.record(contentsOf: self.proxyRequests)
        self.proxyRequests.removeAll(keepingCapacity: true)
    }
}
