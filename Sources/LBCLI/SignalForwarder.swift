import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns SIGINT and SIGTERM (and SIGHUP, for a command that does not reload on it) into one call of
/// `onSignal`, so that a run can stop cleanly and keep its records instead of dying mid-write. A second
/// signal while stopping is ignored with a note.
public final class SignalForwarder {
    private let signals: [Int32]
    private let sources: [any DispatchSourceSignal]

    /// Starts forwarding; call ``cancel()`` to restore the default handling. With `hangup`, SIGHUP
    /// (the terminal closed) stops the run too, instead of killing it where it stands.
    public init(hangup: Bool = false, _ onSignal: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "lblab.signals")
        let fired = SignalFlag()
        self.signals = hangup ? [SIGINT, SIGTERM, SIGHUP] : [SIGINT, SIGTERM]
        self.sources = self.signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                if fired.set() {
                    printError("\nstopping: finishing and saving what was taken so far")
                    onSignal()
                } else {
                    printError("still stopping; records are being saved")
                }
            }
            source.resume()
            return source
        }
    }

    /// Stops forwarding and restores the default handling of the signals.
    public func cancel() {
        for source in self.sources {
            source.cancel()
        }
        for number in self.signals { signal(number, SIG_DFL) }
    }
}

/// Set once.
private final class SignalFlag: @unchecked Sendable {
    // Only touched on the signal queue, which is serial.
    private var isSet = false

    /// Sets the flag; returns whether this call set it.
    func set() -> Bool {
        defer { self.isSet = true }
        return !self.isSet
    }
}

/// A progress line on standard error: rewritten in place on a terminal, one line each otherwise.
public final class ProgressLine: Sendable {
    private let isTerminal = isatty(STDERR_FILENO) != 0

    /// A progress line on standard error.
    public init() {}

    /// Shows `line` as the current progress.
    public func show(_ line: String) {
        if self.isTerminal {
            printError("\r\u{1B}[K" + line, terminator: "")
        } else {
            printError(line)
        }
    }

    /// Removes the line on a terminal, so that another line can be printed in its place.
    public func clear() {
        if self.isTerminal {
            printError("\r\u{1B}[K", terminator: "")
        }
    }

    /// Ends the progress display (moves past the line on a terminal).
    public func end() {
        if self.isTerminal {
            printError("")
        }
    }
}

/// Calls `onHangup` at each SIGHUP (the reload signal of daemons), until cancelled.
public final class HangupListener {
    private let source: any DispatchSourceSignal

    /// Starts listening; call ``cancel()`` to restore the default handling.
    public init(_ onHangup: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)
        self.source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "lblab.hangup"))
        self.source.setEventHandler(handler: onHangup)
        self.source.resume()
    }

    /// Stops listening and restores the default handling.
    public func cancel() {
        self.source.cancel()
        signal(SIGHUP, SIG_DFL)
    }
}
