import LBCore

extension ProxyConfiguration {
    /// A problem no single field shows: the field it is best pinned on, and what is wrong.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The field's path, as in a file (`services[1].name`).
        public var field: String
        /// What is wrong.
        public var problem: String

        public var description: String { "\(self.field): \(self.problem)" }
    }

    /// Checks what no single field can: something to listen on, names that are unique, at most one
    /// default service, no route hidden behind an identical one, TCP listeners naming a service that
    /// exists, addresses that are not used twice.
    public func problems() -> [Problem] {
        var problems: [Problem] = []
        if self.listeners.isEmpty {
            problems.append(Problem(field: "listeners", problem: "nothing to listen on"))
        }
        var addresses: [HostPort: String] = [self.admin.address: "admin.listen"]
        for (index, listener) in self.listeners.enumerated() {
            let field = "listeners[\(index)].listen"
            // Port 0 asks the kernel for a free port: never the same one twice.
            if listener.address.port != 0, let other = Self.claim(listener.address, for: field, in: &addresses) {
                problems.append(Problem(field: field, problem: "\(listener.address) is already used by \(other)"))
            }
            if let service = listener.service, !self.services.contains(where: { $0.name == service }) {
                problems.append(Problem(field: "listeners[\(index)].service", problem: "no service is called \"\(service)\""))
            }
        }
        if self.services.isEmpty {
            problems.append(Problem(field: "services", problem: "at least one service is needed"))
        }
        var serviceNames: [String: Int] = [:]
        var routes: [Service.Route: Int] = [:]
        var defaultService: Int?
        for (index, service) in self.services.enumerated() {
            if let first = Self.claim(service.name, for: index, in: &serviceNames) {
                problems.append(Problem(field: "services[\(index)].name", problem: "\"\(service.name)\" is already the name of services[\(first)]"))
            }
            if let route = service.route {
                let normalized = Service.Route(hosts: route.hosts.sorted(), pathPrefix: route.pathPrefix)
                if let first = Self.claim(normalized, for: index, in: &routes) {
                    problems.append(Problem(field: "services[\(index)].match", problem: "services[\(first)] has the same match, so no request would reach this one"))
                }
            } else if let first = defaultService {
                problems.append(Problem(field: "services[\(index)]", problem: "services[\(first)] is already the default service (no match:); give this one a match"))
            } else {
                defaultService = index
            }
            var backendNames: [String: Int] = [:]
            var backendAddresses: [HostPort: Int] = [:]
            for (position, backend) in service.backends.enumerated() {
                let field = "services[\(index)].backends[\(position)]"
                if backend.name.isEmpty || !backend.name.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) {
                    problems.append(Problem(field: field, problem: "the name \"\(backend.name)\" must be visible ASCII without spaces (it is sent in X-LBLab-Backend)"))
                }
                if let first = Self.claim(backend.name, for: position, in: &backendNames) {
                    problems.append(Problem(field: field, problem: "the name \"\(backend.name)\" is already used by backends[\(first)]"))
                }
                if let first = Self.claim(backend.address, for: position, in: &backendAddresses) {
                    problems.append(Problem(field: field, problem: "\(backend.address) is already backends[\(first)]"))
                }
            }
        }
        return problems
    }

    /// Who claimed `key` first, or `nil` when `claimant` is the first and now holds it.
    private static func claim<Key: Hashable, Claimant>(_ key: Key, for claimant: Claimant, in claims: inout [Key: Claimant]) -> Claimant? {
        if let first = claims[key] { return first }
        claims[key] = claimant
        return nil
    }

    /// Throws the first of ``problems()``, pinned on its line of `file` when the configuration was
    /// read from `root`.
    func validate(file: String, root: ConfigNode? = nil) throws(ConfigError) {
        guard let problem = self.problems().first else { return }
        let line = root?.locate(problem.field)?.line ?? 0
        throw ConfigError(file: file, line: line, field: problem.field, problem: problem.problem)
    }
}

extension ConfigNode {
    /// The value at `path` (`services[1].backends[0]`) below this one, or the deepest one on the way
    /// that exists.
    func locate(_ path: String) -> ConfigNode? {
        var current = self
        for component in path.split(separator: ".") {
            var name = Substring(component)
            var indices: [Int] = []
            while name.hasSuffix("]"), let open = name.lastIndex(of: "[") {
                guard let index = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) else { break }
                indices.insert(index, at: 0)
                name = name[..<open]
            }
            guard case .mapping(let mapping) = current.node,
                let value = mapping.first(where: { $0.key.scalar?.string == String(name) })?.value
            else { return current }
            current = ConfigNode(node: value, file: self.file, field: String(name))
            for index in indices {
                guard case .sequence(let sequence) = current.node, index < sequence.count else { return current }
                current = ConfigNode(node: sequence[index], file: self.file, field: current.field)
            }
        }
        return current
    }
}
