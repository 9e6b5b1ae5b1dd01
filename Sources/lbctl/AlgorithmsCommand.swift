import ArgumentParser
import LBCLI
import LBCore

/// `lbctl algorithms`: every algorithm with its aliases and a one-line description.
struct AlgorithmsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "algorithms",
        abstract: "List the load-balancing algorithms, their aliases and what each does."
    )

    @Flag(name: .goStyle("names"), help: "Print only the canonical names, one per line.")
    var namesOnly = false

    func run() {
        if self.namesOnly {
            for algorithm in Algorithm.allCases {
                print(algorithm.name)
            }
            return
        }
        let nameWidth = Algorithm.allCases.map(\.name.count).max() ?? 0
        let aliasColumn = Algorithm.allCases.map { $0.aliases.joined(separator: ", ") }
        let aliasWidth = max("ALIASES".count, aliasColumn.map(\.count).max() ?? 0)
        func row(_ name: String, _ aliases: String, _ summary: String) -> String {
            name.padding(toLength: nameWidth + 2) + aliases.padding(toLength: aliasWidth + 2) + summary
        }
        print(row("NAME", "ALIASES", "DESCRIPTION"))
        for (algorithm, aliases) in zip(Algorithm.allCases, aliasColumn) {
            print(row(algorithm.name, aliases.isEmpty ? "-" : aliases, algorithm.summary))
        }
    }
}

extension String {
    fileprivate func padding(toLength length: Int) -> String {
        self.count >= length ? self : self + String(repeating: " ", count: length - self.count)
    }
}
