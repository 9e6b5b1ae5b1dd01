import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Ends a child of `lbctl run` when the run's process is gone, so that a crash of the harness leaves no
/// backend or proxy behind: when `LBLAB_PARENT_PID` names this process's parent, a thread checks
/// every 250 ms that the parent is still the same and sends this process SIGTERM (its usual clean stop)
/// once it is not.
public enum ParentWatch {
    /// The environment variable `lbctl run` sets in its children.
    public static let environmentVariable = "LBLAB_PARENT_PID"

    /// Starts watching when the environment asks for it; does nothing otherwise.
    public static func startIfAsked() {
        guard let value = ProcessInfo.processInfo.environment[Self.environmentVariable], let parent = Int32(value) else { return }
        let thread = Thread {
            while getppid() == parent {
                usleep(250_000)
            }
            printError("the process that started this one (\(parent)) is gone; stopping")
            kill(getpid(), SIGTERM)
        }
        thread.name = "lblab-parent-watch"
        thread.start()
    }
}
