#if os(Linux)
import CLinuxEvents
import Glibc
import Synchronization

/// What a ``ClosedLoopEngine`` and the run that started it share across threads: the request to stop,
/// the statistics published so far, and the first connection error.
final class ClosedLoopControl: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    /// An eventfd the engine waits on beside its sockets, written to wake it for ``requestStop()``.
    let wakeDescriptor: Int32
    private let published = Mutex(LoadStatistics())
    private let connectError = Mutex<String?>(nil)

    init() {
        self.wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(self.wakeDescriptor >= 0, "eventfd: \(String(cString: strerror(errno)))")
    }

    deinit {
        close(self.wakeDescriptor)
    }

    /// Asks the engine to stop sending; it ends what is in flight as `interrupted` and finishes.
    func requestStop() {
        self.stopRequested.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(self.wakeDescriptor, &one, MemoryLayout<UInt64>.size)
    }

    var isStopRequested: Bool { self.stopRequested.load(ordering: .acquiring) }

    /// The statistics the engine published last: at most 100 ms old while it runs, final once it has
    /// finished.
    var statistics: LoadStatistics { self.published.withLock { $0 } }

    func publish(_ statistics: LoadStatistics) {
        self.published.withLock { $0 = statistics }
    }

    var firstConnectError: String? { self.connectError.withLock { $0 } }

    func noteConnectError(_ description: String) {
        self.connectError.withLock { if $0 == nil { $0 = description } }
    }
}
#endif
