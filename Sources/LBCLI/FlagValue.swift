import ArgumentParser

/// Reads the value of flag `-name` with `parse`; a failure becomes a usage error that names the flag
/// and says what is wrong (`-latency: "5" needs a unit after 5, e.g. 5ms or 5s`), exit code 64.
public func flagValue<T>(_ name: String, _ parse: () throws -> T) throws -> T {
    do {
        return try parse()
    } catch {
        throw ValidationError("-\(name): \(error)")
    }
}

/// Throws a usage error naming flag `-name` unless `condition` holds.
public func requireFlag(_ name: String, _ condition: Bool, _ problem: @autoclosure () -> String) throws {
    guard condition else {
        throw ValidationError("-\(name): \(problem())")
    }
}
