import Cluster
import Foundation
import Testing

/// Open MPI hostfiles as `conclave shard` reads them, and the ranks `--map-by slot` puts on each node.
@Suite struct Hostfiles {
    @Test func commentsBlankLinesAndSpellingsOfSlots() throws {
        let hostfile = try Hostfile(text: """
            # the job's nodes
            node-a slots=2 max_slots=4

            ubuntu@node-b   slots = 1   # a user name and spaces around "="
            node-c count=1
            node-a cpu=1
            """, source: "hosts")
        #expect(hostfile.nodes.map(\.name) == ["node-a", "node-b", "node-c"])
        #expect(hostfile.nodes.map(\.slots) == [3, 1, 1], "a node listed twice adds up")
        #expect(hostfile.nodes.map(\.ranks) == [0..<3, 3..<4, 4..<5])
        #expect(hostfile.totalSlots == 5)
        #expect(hostfile.node(ofRank: 3)?.name == "node-b")
        #expect(hostfile.node(ofRank: 5) == nil)
    }

    @Test func nodesWithoutSlotsAreSkipped() throws {
        let hostfile = try Hostfile(text: "node-a slots=0\nnode-b slots=3\n", source: "hosts")
        #expect(hostfile.nodes.map(\.name) == ["node-b"])
        #expect(hostfile.nodes[0].ranks == 0..<3)
    }

    /// The error `text` raises, as one line (fails when it parses).
    func error(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        do {
            let parsed = try Hostfile(text: text, source: "cluster/hosts")
            Issue.record("expected an error, parsed \(parsed.nodes)", sourceLocation: sourceLocation)
        } catch {
            #expect(!error.description.contains("\n"), sourceLocation: sourceLocation)
            return error.description
        }
        return ""
    }

    @Test func errorsNameTheLineAndSayWhatToWrite() {
        #expect(error("node-a slots=2\nnode-b\n") == "cluster/hosts:2: node node-b has no slots=N; Open MPI would give it one slot per core of that node, which conclave cannot know: write node-b slots=N")
        #expect(error("node-a slots=two").contains("cluster/hosts:1: \"node-a slots=two\": slots must be a whole number, got \"two\""))
        #expect(error("node-a slots=2 ports=4").contains("unknown key \"ports\""))
        #expect(error("node-a slots=2 fast").contains("\"fast\" is not key=value"))
        #expect(error("slots=2").contains("a line starts with a node name"))
        #expect(error("# nobody\n\n") == "hostfile cluster/hosts lists no node with a slot; write one line per node, e.g. \"node-a slots=4\"")
    }

    @Test func unreadableFile() {
        #expect(throws: HostfileError.self) { try Hostfile(contentsOf: URL(fileURLWithPath: "/nonexistent/hosts")) }
    }
}
