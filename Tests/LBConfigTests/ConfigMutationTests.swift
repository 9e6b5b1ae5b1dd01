import Foundation
import LBConfig
import LBCore
import LBTesting
import Testing

/// The shipped configuration and scenario files, mutated at random (fixed seeds): each mutant is read,
/// or refused with an error that names the file and the line at fault. None traps.
@Suite("Configuration files under random mutation")
struct ConfigMutationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Mutates `file` 2,000 times and reads each mutant with `read`; returns how many were read and how
    /// many refused, and records any refusal that names no line.
    func mutate(_ file: String, seed: UInt64, read: (String) throws(ConfigError) -> Void) throws -> (read: Int, refused: Int) {
        let text = try String(contentsOf: Self.root.appendingPathComponent(file), encoding: .utf8)
        var generator = SeededGenerator(seed: seed)
        var counts = (read: 0, refused: 0)
        for _ in 0..<2_000 {
            let mutant = String(decoding: Mutation.mutated(Array(text.utf8), using: &generator), as: UTF8.self)
            do {
                try read(mutant)
                counts.read += 1
            } catch {
                counts.refused += 1
                #expect(error.file == "m.yml" && error.line > 0, "no line named: \(String(reflecting: error.description))")
            }
        }
        return counts
    }

    @Test("config.yml")
    func proxyConfiguration() throws {
        let counts = try mutate("config.yml", seed: 0xC0F1) { text throws(ConfigError) in _ = try ProxyConfiguration.parse(text, file: "m.yml") }
        // Comments take much of the file: many mutants only change one.
        #expect(counts.read > 200 && counts.refused > 500, "\(counts)")
    }

    @Test("scenarios/quickstart.yml and scenarios/backend-failure.yml", arguments: ["scenarios/quickstart.yml", "scenarios/backend-failure.yml"])
    func scenario(file: String) throws {
        let counts = try mutate(file, seed: 0x5CE7) { text throws(ConfigError) in _ = try Scenario.parse(text, file: "m.yml") }
        #expect(counts.read > 100 && counts.refused > 500, "\(counts)")
    }
}
