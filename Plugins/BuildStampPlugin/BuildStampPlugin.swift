import Foundation
import PackagePlugin

/// Writes, before every build, the commit the package's sources are at and whether the work tree has
/// changes git does not have in that commit, as constants of the target that uses this plugin
/// (`LBBuildStamp`). Runs recorded by the binary then say which code made them, wherever the binary is
/// run from, instead of whatever checkout happens to be the working directory.
///
/// The file is rewritten only when its text changes, so a build with nothing new compiles nothing.
/// Outside a git checkout (a source archive) or without git, both constants are `nil`.
@main
struct BuildStampPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "Stamp")
        let script = """
            set -u
            root="$1"; dir="$2"; file="$dir/BuildStamp+Generated.swift"
            mkdir -p "$dir"
            commit=nil; modified=nil
            if hash=$(git -C "$root" rev-parse --verify HEAD 2>/dev/null); then
                commit="\\"$hash\\""
                if changes=$(git -C "$root" status --porcelain 2>/dev/null); then
                    if [ -z "$changes" ]; then modified=false; else modified=true; fi
                fi
            fi
            text="// Written by BuildStampPlugin before each build; not in git.
            let generatedCommit: String? = $commit
            let generatedTreeModified: Bool? = $modified"
            if [ ! -f "$file" ] || [ "$(cat "$file")" != "$text" ]; then
                printf '%s\\n' "$text" > "$file.tmp" && mv "$file.tmp" "$file"
            fi
            """
        return [
            .prebuildCommand(
                displayName: "Stamping \(target.name) with the git commit",
                executable: URL(filePath: "/bin/sh"),
                arguments: ["-c", script, "stamp", context.package.directoryURL.path(), output.path()],
                outputFilesDirectory: output
            )
        ]
    }
}
