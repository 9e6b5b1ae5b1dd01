import ArgumentParser
import LBCLI

/// `lbctl`: the LBLab command line. Each subcommand parses its flags and calls a library; no logic
/// lives here.
@main
struct LBCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lbctl",
        abstract: "LBLab: run load-balancing experiments and compare algorithms.",
        version: LBLabVersion.full,
        subcommands: [RunCommand.self, SimCommand.self, RunsCommand.self, ReportCommand.self, CompareCommand.self, ExportCommand.self, ProxyCommand.self, BackendCommand.self, AlgorithmsCommand.self]
    )
}
