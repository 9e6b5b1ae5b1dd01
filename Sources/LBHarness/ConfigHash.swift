import Crypto

/// The SHA-256 of a run's configuration text, recorded in `runs.config_sha256` so that runs of the same
/// configuration can be found and told apart from edited ones.
enum ConfigHash {
    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
