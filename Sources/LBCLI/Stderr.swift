#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes to standard error, where progress and diagnostics go; standard output is for results.
public func printError(_ line: String, terminator: String = "\n") {
    var text = line + terminator
    text.withUTF8 { bytes in
        _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count)
    }
}
