/// Waiting for something the harness started to answer.
enum Readiness {
    /// Asks `probe` every 25 ms until it answers `nil` (ready), for at most 10 s, then fails with the
    /// last reason it gave (or threw). Fails at once when `ended` returns the last output of a process
    /// that ended meanwhile.
    static func wait(
        for what: String,
        ended: () -> String?,
        probe: () async throws(HarnessError) -> String?
    ) async throws(HarnessError) {
        let deadline = ContinuousClock.now + .seconds(10)
        var lastError = "no answer"
        while ContinuousClock.now < deadline {
            if let log = ended() {
                throw .notReady(what: what, reason: "its process ended", log: log)
            }
            do {
                guard let reason = try await probe() else { return }
                lastError = reason
            } catch {
                lastError = "\(error)"
            }
            try? await Task.sleep(for: .milliseconds(25))
        }
        throw .notReady(what: what, reason: lastError, log: ended() ?? "")
    }
}
