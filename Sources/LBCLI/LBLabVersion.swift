import LBBuildStamp

/// The version recorded with every run and printed by `--version`.
public enum LBLabVersion {
    public static let string = "0.1.0"

    /// What `--version` prints: the version and the commit the binary was built from, `+modified` when
    /// its work tree had changes not in that commit.
    public static let full = "\(string) (\(BuildStamp.summary))"
}
