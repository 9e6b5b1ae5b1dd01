/// The version recorded with every run and printed by `--version`.
enum LBLabVersion {
    static let string = "0.1.0"
}
