/// Which code a binary was built from: the commit of the package's checkout at build time, and whether
/// its work tree had changes not in that commit. `BuildStampPlugin` writes both before every build.
///
/// Runs record these (`runs.git_commit`, `runs.git_modified`) so that a result names the code that
/// produced it, not the checkout the command happened to run in.
public enum BuildStamp {
    /// The commit (40 hex digits) the sources were at, or `nil` when built outside a git checkout.
    public static let commit: String? = generatedCommit

    /// Whether the work tree differed from ``commit`` (changed, added or deleted files that git does not
    /// ignore), or `nil` when unknown.
    public static let treeModified: Bool? = generatedTreeModified

    /// `abc1234` or `abc1234+modified`, for `--version`; `unknown commit` without one.
    public static var summary: String {
        guard let commit = Self.commit else { return "unknown commit" }
        return String(commit.prefix(12)) + (Self.treeModified == true ? "+modified" : "")
    }
}
