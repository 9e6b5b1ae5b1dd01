/// The version recorded with every run and printed by `--version`.
public enum LBLabVersion {
    public static let string = "0.1.0"
}
