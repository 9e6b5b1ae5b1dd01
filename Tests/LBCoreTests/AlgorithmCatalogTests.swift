import LBCore
import Testing

@Suite("Algorithm catalog")
struct AlgorithmCatalogTests {
    @Test("all thirteen algorithms are listed, each with a description")
    func thirteenAlgorithms() {
        #expect(Algorithm.allCases.count == 13)
        #expect(
            Set(Algorithm.allCases.map(\.name)) == [
                "round-robin", "weighted-round-robin", "sticky-round-robin", "random", "weighted-random",
                "least-connections", "power-of-two", "peak-ewma", "ip-hash", "consistent-hash", "maglev",
                "rendezvous", "least-resources",
            ]
        )
        for algorithm in Algorithm.allCases {
            #expect(!algorithm.summary.isEmpty)
        }
    }

    @Test(
        "every alias of DESIGN §4 resolves to its algorithm, in any letter case",
        arguments: [
            ("rr", Algorithm.roundRobin), ("RR", .roundRobin), ("roundrobin", .roundRobin), ("static-rr", .roundRobin),
            ("wrr", .weightedRoundRobin), ("WRR", .weightedRoundRobin),
            ("SRR", .stickyRoundRobin), ("sticky", .stickyRoundRobin),
            ("random", .random), ("weighted-random", .weightedRandom),
            ("lc", .leastConnections), ("LC", .leastConnections), ("leastconn", .leastConnections),
            ("least_conn", .leastConnections),
            ("p2c", .powerOfTwo), ("PTC", .powerOfTwo), ("least-request", .powerOfTwo), ("ptc", .powerOfTwo),
            ("ewma", .peakEWMA),
            ("SIH", .ipHash), ("source", .ipHash), ("ip_hash", .ipHash), ("sih", .ipHash),
            ("ring-hash", .consistentHash), ("chwbl", .consistentHash),
            ("maglev", .maglev), ("hrw", .rendezvous), ("least-used-resources", .leastResources),
            ("Least-Connections", .leastConnections),
        ]
    )
    func aliases(name: String, algorithm: Algorithm) {
        #expect(Algorithm(name: name) == algorithm)
    }

    @Test("canonical names round-trip and unknown names are rejected")
    func canonicalNames() {
        for algorithm in Algorithm.allCases {
            #expect(Algorithm(name: algorithm.name) == algorithm)
        }
        #expect(Algorithm(name: "fastest") == nil)
        #expect(Algorithm(name: "") == nil)
    }

    @Test("the factory builds a picker for each algorithm that reports that algorithm")
    func factory() throws {
        for algorithm in Algorithm.allCases {
            let picker = try algorithm.makePicker()
            #expect(picker.algorithm == algorithm)
        }
    }

    @Test("out-of-range parameters are refused with the parameter's name")
    func parameterValidation() {
        var parameters = PickerParameters()
        parameters.tableSize = 65_536
        #expect(throws: PickerParameterError.self) { try Algorithm.maglev.makePicker(parameters) }
        do {
            _ = try Algorithm.maglev.makePicker(parameters)
        } catch {
            #expect(error.parameter == "table-size")
            #expect(error.description.contains("65536"))
        }
        parameters = PickerParameters()
        parameters.draws = 0
        #expect(throws: PickerParameterError(parameter: "draws", problem: "must be between 1 and 64, got 0")) {
            try Algorithm.powerOfTwo.makePicker(parameters)
        }
        parameters = PickerParameters()
        parameters.loadFactor = -1
        #expect(throws: PickerParameterError.self) { try Algorithm.consistentHash.makePicker(parameters) }
        parameters.loadFactor = nil
        #expect(throws: Never.self) { try Algorithm.consistentHash.makePicker(parameters) }
        parameters = PickerParameters()
        parameters.decay = .zero
        #expect(throws: PickerParameterError.self) { try Algorithm.peakEWMA.makePicker(parameters) }
        // A parameter an algorithm does not use is not its concern.
        #expect(throws: Never.self) { try Algorithm.roundRobin.makePicker(parameters) }
    }
}
