/// Why the results store refused a file or failed to write: each case says what to do about it.
public enum StoreError: Error, Hashable, CustomStringConvertible {
    /// The path exists but is not a SQLite database (a text file, a directory, another format).
    case notSQLite(path: String)
    /// The file is a SQLite database that LBLab did not create; it is left untouched.
    case notResultsDatabase(path: String)
    /// The file was written by a newer LBLab, whose schema this version does not know.
    case newerSchema(path: String, unknownMigrations: [String])
    /// SQLite refused an operation.
    case sqlite(path: String, message: String)
    /// The run named does not exist in the file.
    case noSuchRun(path: String, run: Int64)

    public var description: String {
        switch self {
        case .notSQLite(let path):
            "\(path): not a SQLite database; give the path of an LBLab results file, or a new path to create one"
        case .notResultsDatabase(let path):
            "\(path): a SQLite database, but not an LBLab results file (it has other tables); it was left as it is"
        case .newerSchema(let path, let unknown):
            "\(path): written by a newer LBLab (schema \(unknown.joined(separator: ", "))); "
                + "use that version, or a new file"
        case .sqlite(let path, let message):
            "\(path): \(message)"
        case .noSuchRun(let path, let run):
            "\(path): there is no run \(run)"
        }
    }
}
