import Foundation

/// Where the running LBLab executable is, which the harness starts again as backends and proxy. (The
/// commit it was built from is `BuildStamp`'s.)
public enum BuildInfo {
    /// The path of the running executable (`/proc/self/exe`), which the harness starts again as backends
    /// and proxy.
    public static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
