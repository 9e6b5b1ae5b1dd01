import LBConfig
import LBCore
import NIOCore
import NIOPosix

/// A backend that went down or came back, as active health checks decided.
public struct HealthChange: Sendable, Hashable, CustomStringConvertible {
    /// The service's name.
    public var service: String
    /// The backend's name.
    public var backend: String
    /// Whether it is up now.
    public var isUp: Bool
    /// The probes in a row that decided it (fall or rise).
    public var probes: Int
    /// What the last probe saw.
    public var detail: String

    public var description: String {
        "\(self.service)/\(self.backend) is \(self.isUp ? "up" : "down") after \(self.probes) \(self.isUp ? "passed" : "failed") checks (\(self.detail))"
    }
}

/// Active health checks (HAProxy's `check inter rise fall`): probes every backend of every service
/// that has a `health` section, on one event loop, and marks it down or up in its shared
/// ``BackendState`` when ``HealthCheckStateMachine`` says so. Every change is reported to
/// `onTransition` (logged by `lbctl proxy`, and recorded as an event with `-db`).
///
/// A probe is a TCP connect, or an HTTP `GET path` whose status line must carry the expected status,
/// within the check's timeout.
final class HealthChecker {
    private struct Target {
        let service: ServiceRuntime
        let backend: BackendState
        let address: HostPort
        let check: Service.HealthCheck
        var machine: HealthCheckStateMachine
        var timer: Scheduled<Void>?
    }

    private let eventLoop: any EventLoop
    private let runtime: ProxyRuntime
    private let onTransition: @Sendable (HealthChange) -> Void
    /// The backends probed, by their state's identity.
    private var targets: [ObjectIdentifier: Target] = [:]
    /// Each running service's version and check as last taken up, by its identity.
    private var seen: [ObjectIdentifier: (version: Int, check: Service.HealthCheck?)] = [:]
    private var reconcileTimer: Scheduled<Void>?
    private var stopped = false

    init(eventLoop: any EventLoop, runtime: ProxyRuntime, onTransition: @escaping @Sendable (HealthChange) -> Void) {
        self.eventLoop = eventLoop
        self.runtime = runtime
        self.onTransition = onTransition
    }

    /// Starts probing; the first probe of each backend goes out at once. Backends added later are
    /// probed from when the checker notices them (within a second); removed ones are no longer.
    func start() {
        self.reconcile()
    }

    /// Stops every timer; probes in flight finish unheard.
    func stop() {
        self.stopped = true
        self.reconcileTimer?.cancel()
        for target in self.targets.values {
            target.timer?.cancel()
        }
    }

    /// Brings the targets in line with the running services, their backend lists and their checks (a
    /// reload may change all three), and looks again in a second.
    private func reconcile() {
        guard !self.stopped else { return }
        let now = Self.now()
        let services = self.runtime.services
        let running = Set(services.map(ObjectIdentifier.init))
        // A service retired: its backends are probed no more.
        for (key, target) in self.targets where !running.contains(ObjectIdentifier(target.service)) {
            target.timer?.cancel()
            self.targets[key] = nil
        }
        self.seen = self.seen.filter { running.contains($0.key) }
        for service in services {
            let serviceID = ObjectIdentifier(service)
            guard service.version != self.seen[serviceID]?.version else { continue }
            let (members, tunables, version) = service.snapshot()
            let check = tunables.health
            let checkedBefore = self.seen[serviceID]?.check != nil
            self.seen[serviceID] = (version, check)
            let present = check == nil ? [] : Set(members.map { ObjectIdentifier($0.state) })
            // A backend removed, or probed by a check that changed: its probing stops (and starts anew
            // below, from the state it is in, under the new check).
            for (key, target) in self.targets where target.service === service && (!present.contains(key) || target.check != check) {
                target.timer?.cancel()
                self.targets[key] = nil
            }
            if check == nil, checkedBefore {
                // Checks turned off: a backend is taken as up, as one added to a service without checks is.
                for member in members where !member.state.isHealthy {
                    member.state.setHealthy(true)
                    self.onTransition(
                        HealthChange(service: service.settings.name, backend: member.spec.name, isUp: true, probes: 0, detail: "health checks turned off")
                    )
                }
            }
            guard let check else { continue }
            for member in members where self.targets[ObjectIdentifier(member.state)] == nil {
                let key = ObjectIdentifier(member.state)
                self.targets[key] = Target(
                    service: service,
                    backend: member.state,
                    address: member.spec.address,
                    check: check,
                    machine: HealthCheckStateMachine(configuration: check.timing, initialState: member.state.isHealthy ? .up : .down, now: now)
                )
                self.due(key)
            }
        }
        self.reconcileTimer = self.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { self.reconcile() }
    }

    private static func now() -> Instant {
        Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))
    }

    private func schedule(_ key: ObjectIdentifier, at instant: Instant) {
        guard !self.stopped, self.targets[key] != nil else { return }
        self.targets[key]!.timer = self.eventLoop.assumeIsolated().scheduleTask(
            deadline: .uptimeNanoseconds(UInt64(max(0, instant.nanoseconds)))
        ) {
            self.due(key)
        }
    }

    private func due(_ key: ObjectIdentifier) {
        guard !self.stopped, let target = self.targets[key] else { return }
        switch self.targets[key]!.machine.probeDue(now: Self.now()) {
        case .wait(let until):
            self.schedule(key, at: until)
        case .sendProbe(let deadline):
            self.probe(target.address, target.check.probe, deadline: deadline) { passed, detail in
                self.result(key, passed: passed, detail: detail)
            }
        }
    }

    private func result(_ key: ObjectIdentifier, passed: Bool, detail: String) {
        guard !self.stopped, self.targets[key] != nil else { return }
        let now = Self.now()
        let action = passed ? self.targets[key]!.machine.probeSucceeded(now: now) : self.targets[key]!.machine.probeFailed(now: now)
        if let transition = action.transition, let target = self.targets[key] {
            let isUp = transition == .wentUp
            target.backend.setHealthy(isUp)
            if isUp, let backend = target.service.backends.first(where: { $0.state === target.backend }) {
                target.service.startRamp(backend, now: now)
            }
            self.onTransition(
                HealthChange(
                    service: target.service.settings.name,
                    backend: target.backend.name,
                    isUp: isUp,
                    probes: isUp ? target.check.timing.rise : target.check.timing.fall,
                    detail: detail
                )
            )
        }
        self.schedule(key, at: action.nextProbeAt)
    }

    /// One probe of `address`; `done` is called once, on the checker's loop.
    private func probe(
        _ address: HostPort,
        _ kind: Service.HealthCheck.Probe,
        deadline: Instant,
        done: @escaping (Bool, String) -> Void
    ) {
        var finished = false
        let finish: (Bool, String) -> Void = { passed, detail in
            guard !finished else { return }
            finished = true
            done(passed, detail)
        }
        let timeout = TimeAmount.nanoseconds(max(1, deadline.nanoseconds - Self.now().nanoseconds))
        let expected: Int?
        let request: String?
        switch kind {
        case .tcp:
            (expected, request) = (nil, nil)
        case .http(let path, let status):
            expected = status
            request = "GET \(path) HTTP/1.1\r\nHost: \(address)\r\nUser-Agent: lblab-health-check\r\nConnection: close\r\n\r\n"
        }
        ClientBootstrap(group: self.eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HealthProbeHandler())
                }
            }
            .connect(host: address.host, port: address.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    finish(false, "connect: \(error)")
                case .success(let channel):
                    guard let request, let expected else {
                        finish(true, "connected")
                        channel.close(promise: nil)
                        return
                    }
                    guard let statusLine = try? channel.pipeline.syncOperations.handler(type: HealthProbeHandler.self) else {
                        finish(false, "no probe handler")
                        channel.close(promise: nil)
                        return
                    }
                    let timer = self.eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, deadline.nanoseconds)))) {
                        finish(false, "no status line within the timeout")
                        channel.close(promise: nil)
                    }
                    statusLine.onStatus = { status in
                        timer.cancel()
                        finish(status == expected, status.map { "status \($0)" } ?? "no HTTP status line")
                        channel.close(promise: nil)
                    }
                    var buffer = channel.allocator.buffer(capacity: request.utf8.count)
                    buffer.writeString(request)
                    channel.writeAndFlush(buffer, promise: nil)
                }
            }
    }
}

@available(*, unavailable)
extension HealthChecker: Sendable {}

/// Reads the status code of an HTTP response's first line (`HTTP/1.1 200 OK`) and reports it once;
/// `nil` when the connection ends first or the line is not HTTP.
final class HealthProbeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    var onStatus: ((Int?) -> Void)?
    private var received = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.received.writeBuffer(&buffer)
        guard let view = self.received.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if self.received.readableBytes > 8_192 { self.report(nil) }
            return
        }
        let line = String(decoding: self.received.readableBytesView[..<view], as: UTF8.self)
        let parts = line.split(separator: " ")
        if parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) {
            self.report(status)
        } else {
            self.report(nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.report(nil)
        context.fireChannelInactive()
    }

    private func report(_ status: Int?) {
        let callback = self.onStatus
        self.onStatus = nil
        callback?(status)
    }
}

@available(*, unavailable)
extension HealthProbeHandler: Sendable {}
