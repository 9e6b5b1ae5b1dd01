import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A process the harness started: its PID, in a process group of its own (so that Ctrl-C at the
/// terminal reaches only the harness, which then stops its children in order), with its output in a
/// log file. It is stopped by PID, never by name.
///
/// With ``joining`` cgroup files, the child is started through `/bin/sh`, which writes its own PID into
/// each file and then `exec`s the program: the program runs inside its container from its first
/// instruction.
public final class ChildProcess: Sendable {
    /// The child's PID.
    public let pid: Int32
    /// What was run, for messages.
    public let commandLine: String
    /// Where its standard output and error go.
    public let logPath: String
    private let exit = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments`, its output appended to `logPath`, `environment` added to
    /// this process's, joining the cgroups whose `cgroup.procs` files are in `joining`.
    public init(
        executable: String,
        arguments: [String],
        logPath: String,
        environment: [String: String] = [:],
        joining procsFiles: [String] = []
    ) throws(HarnessError) {
        var argv: [String]
        if procsFiles.isEmpty {
            argv = [executable] + arguments
        } else {
            let joins = procsFiles.map { "echo $$ > '\($0)'" }.joined(separator: " && ")
            argv = ["/bin/sh", "-c", "\(joins) && exec \"$0\" \"$@\"", executable] + arguments
        }
        self.commandLine = ([executable] + arguments).joined(separator: " ")
        self.logPath = logPath
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let envp = env.map { "\($0.key)=\($0.value)" }

        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own (pgid = its pid), and the default signal handling whatever this process ignores.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var pid: pid_t = 0
        let status = Self.withCStrings(argv) { cArgv in
            Self.withCStrings(envp) { cEnvp in
                posix_spawn(&pid, argv[0], &fileActions, &attributes, cArgv, cEnvp)
            }
        }
        guard status == 0 else {
            throw .spawn(command: self.commandLine, reason: String(cString: strerror(status)))
        }
        self.pid = pid
    }

    /// Sends `signal` to the child (and its process group, which only it and its own children are in),
    /// unless it has already been reaped.
    public func signal(_ signal: Int32) {
        guard self.exitStatus() == nil else { return }
        kill(-self.pid, signal)
        kill(self.pid, signal)
    }

    /// The child's exit status once it has ended (reaping it), or `nil` while it runs. A status below
    /// zero is the negated number of the signal that ended it.
    public func exitStatus() -> Int32? {
        self.exit.withLock { exit in
            if let exit { return exit }
            var status: Int32 = 0
            let result = waitpid(self.pid, &status, WNOHANG)
            guard result == self.pid else {
                if result < 0, errno == ECHILD { exit = 0 }
                return exit
            }
            // WIFEXITED / WEXITSTATUS / WTERMSIG spelled out: Glibc's macros do not reach Swift.
            let signal = status & 0x7F
            exit = signal == 0 ? (status >> 8) & 0xFF : -signal
            return exit
        }
    }

    /// Whether the child is still running.
    public var isRunning: Bool { self.exitStatus() == nil }

    /// Waits until the child has ended or `timeout` passed; returns whether it ended.
    public func wait(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while self.isRunning {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Stops the child: SIGCONT (a stopped child cannot act on SIGTERM), SIGTERM, and SIGKILL if it has
    /// not ended within `grace`. Returns its exit status.
    @discardableResult
    public func stop(grace: Duration) async -> Int32? {
        guard self.isRunning else { return self.exitStatus() }
        self.signal(SIGCONT)
        self.signal(SIGTERM)
        if await self.wait(timeout: grace) { return self.exitStatus() }
        self.signal(SIGKILL)
        _ = await self.wait(timeout: .seconds(5))
        return self.exitStatus()
    }

    /// The last `lines` lines of the child's log, for error messages.
    public func logTail(lines: Int = 5) -> String {
        let text = (try? String(contentsOfFile: self.logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// Why an experiment could not run: each case says what failed and where to look.
public enum HarnessError: Error, Hashable, CustomStringConvertible {
    /// A process could not be started.
    case spawn(command: String, reason: String)
    /// A process started but never became ready.
    case notReady(what: String, reason: String, log: String)
    /// A control call (backend control endpoint, proxy admin API) failed.
    case control(what: String, reason: String)
    /// The results store refused something.
    case store(String)
    /// A sweep's point could not be made, or its capacity probe failed.
    case sweep(String)

    public var description: String {
        switch self {
        case .spawn(let command, let reason): "cannot start \(command): \(reason)"
        case .notReady(let what, let reason, let log): "\(what) did not become ready: \(reason)" + (log.isEmpty ? "" : "; its last output:\n\(log)")
        case .control(let what, let reason): "\(what): \(reason)"
        case .store(let message), .sweep(let message): message
        }
    }
}
