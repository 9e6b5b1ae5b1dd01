import Foundation

/// Where this machine's cgroups are and which version controls CPU and memory, as read from
/// `/proc/self/mountinfo` and `/proc/self/cgroup`.
///
/// Three shapes occur: the unified hierarchy alone (cgroup v2, most current distributions), v1
/// controllers each mounted on their own (or co-mounted, `cpu,cpuacct`), and the hybrid of both where
/// the v2 mount carries no controllers (this project's CI machine). LBLab uses v2 when its root offers
/// the `cpu` and `memory` controllers, and v1 otherwise.
public struct CgroupLayout: Sendable, Hashable {
    /// The version containers are made with.
    public enum Version: String, Sendable, Hashable {
        case v1, v2
    }

    /// The version in use.
    public var version: Version
    /// v2: the unified mount point (`/sys/fs/cgroup`).
    public var unifiedMount: String?
    /// v1: the directory of each controller (`cpu`, `cpuacct`, `memory`) that this process's own cgroup is
    /// in, where containers are made as children (`/sys/fs/cgroup/memory/some/path`).
    public var controllerDirectories: [String: String]

    /// The controllers containers need.
    static let controllers = ["cpu", "cpuacct", "memory"]

    /// The layout of this machine, or `nil` with the reason when neither version offers CPU and memory
    /// controllers.
    public static func detect() -> Result<CgroupLayout, CgroupError> {
        Self.detect(
            mountinfo: try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
            ownCgroups: try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
            controllersOf: { try? String(contentsOfFile: "\($0)/cgroup.controllers", encoding: .utf8) }
        )
    }

    /// The layout that `mountinfo` and `ownCgroups` (the texts of `/proc/self/mountinfo` and
    /// `/proc/self/cgroup`) describe; `controllersOf` reads a v2 directory's `cgroup.controllers`.
    public static func detect(
        mountinfo: String?,
        ownCgroups: String?,
        controllersOf: (String) -> String?
    ) -> Result<CgroupLayout, CgroupError> {
        guard let mountinfo else { return .failure(.unavailable("cannot read /proc/self/mountinfo")) }
        let mounts = Self.mounts(mountinfo)
        if let unified = mounts.first(where: { $0.type == "cgroup2" }) {
            let available = Set((controllersOf(unified.point) ?? "").split(whereSeparator: \.isWhitespace).map(String.init))
            if available.isSuperset(of: ["cpu", "memory"]) {
                return .success(CgroupLayout(version: .v2, unifiedMount: unified.point, controllerDirectories: [:]))
            }
        }
        let own = Self.ownPaths(ownCgroups ?? "")
        var directories: [String: String] = [:]
        for mount in mounts where mount.type == "cgroup" {
            for controller in Self.controllers where mount.options.contains(controller) {
                // The mount's root is a path inside the hierarchy (usually "/"); our cgroup is below it.
                let path = own[controller] ?? "/"
                let relative = mount.root == "/" ? path : String(path.dropFirst(mount.root.count))
                directories[controller] = mount.point + (relative == "/" ? "" : relative)
            }
        }
        guard directories["cpu"] != nil, directories["memory"] != nil else {
            return .failure(.unavailable("no cgroup v2 root with the cpu and memory controllers, and no v1 cpu and memory hierarchies"))
        }
        return .success(CgroupLayout(version: .v1, unifiedMount: nil, controllerDirectories: directories))
    }

    struct Mount: Hashable {
        var root: String
        var point: String
        var type: String
        var options: Set<String>
    }

    /// The cgroup mounts of a mountinfo text: `36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:14 - cgroup cgroup rw,cpu`.
    static func mounts(_ mountinfo: String) -> [Mount] {
        mountinfo.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard let dash = fields.firstIndex(of: "-"), dash >= 5, fields.count >= dash + 4 else { return nil }
            let type = fields[dash + 1]
            guard type == "cgroup" || type == "cgroup2" else { return nil }
            let options = Set(fields[dash + 3].split(separator: ",").map(String.init))
            return Mount(root: Self.unescape(fields[3]), point: Self.unescape(fields[4]), type: type, options: options)
        }
    }

    /// Our own cgroup path per v1 controller, from `/proc/self/cgroup` (`4:memory:/some/path`,
    /// `1:cpu,cpuacct:/`).
    static func ownPaths(_ text: String) -> [String: String] {
        var paths: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            for controller in parts[1].split(separator: ",") {
                paths[String(controller)] = String(parts[2])
            }
        }
        return paths
    }

    /// mountinfo escapes spaces and the like as `\040`.
    private static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var result = ""
        var characters = Substring(text)
        while let first = characters.first {
            if first == "\\", characters.count >= 4, let code = UInt8(characters.dropFirst().prefix(3), radix: 8) {
                result.append(Character(UnicodeScalar(code)))
                characters = characters.dropFirst(4)
            } else {
                result.append(first)
                characters = characters.dropFirst()
            }
        }
        return result
    }
}

/// Why a container could not be made or used.
public enum CgroupError: Error, Hashable, CustomStringConvertible {
    /// No usable cgroup hierarchy on this machine.
    case unavailable(String)
    /// A cgroup file could not be written or a directory made.
    case failed(path: String, reason: String)

    public var description: String {
        switch self {
        case .unavailable(let reason): reason
        case .failed(let path, let reason): "\(path): \(reason)"
        }
    }
}
