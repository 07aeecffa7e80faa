import AtollCore
import Foundation
import Testing

@testable import AtollNetwork

/// Scratch network namespaces under /run/atoll-test, removed last-in-first-out when the lab goes.
final class NamespaceLab: @unchecked Sendable {
    static let directory = "/run/atoll-test"
    private(set) var paths: [String] = []

    init() throws {
        try FileManager.default.createDirectory(atPath: Self.directory, withIntermediateDirectories: true)
    }

    static func scratchPath() -> String { "\(directory)/netns-\(UUID().uuidString.prefix(8).lowercased())" }

    /// A new namespace (loopback up) that the lab removes.
    func namespace() throws -> NetworkNamespace {
        let namespace = try NetworkNamespace.create(at: Self.scratchPath())
        paths.append(namespace.path)
        return namespace
    }

    /// Removes every namespace, newest first, and checks that neither file nor mount is left.
    func removeAll() {
        for path in paths.reversed() {
            #expect(throws: Never.self) { try NetworkNamespace.remove(at: path) }
            #expect(!FileManager.default.fileExists(atPath: path))
            #expect(!Self.isMounted(path))
        }
        paths = []
    }

    deinit {
        for path in paths.reversed() { try? NetworkNamespace.remove(at: path) }
    }

    /// Whether /proc/self/mountinfo lists a mount at `path`.
    static func isMounted(_ path: String) -> Bool {
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return mountinfo.split(separator: "\n").contains {
            $0.split(separator: " ").dropFirst(4).first == Substring(path)
        }
    }
}

/// Namespaces are created by a throwaway thread, pinned with a bind mount, and removed without a trace.
struct NetworkNamespaceTests {
    @Test func aCreatedNamespaceIsPinnedAndItsLoopbackIsUp() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let namespace = try lab.namespace()
        #expect(FileManager.default.fileExists(atPath: namespace.path))
        #expect(NamespaceLab.isMounted(namespace.path))
        let netlink = try RouteNetlink(namespace: namespace)
        let links = try netlink.links()
        #expect(links.map(\.name) == ["lo"])
        #expect(links.first?.isUp == true)
        #expect(try netlink.addresses(index: links.first?.index).contains { $0.address == IPAddress("127.0.0.1") })
    }

    @Test func theCallingThreadNeverChangesNamespace() throws {
        let before = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net")
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let namespace = try lab.namespace()
        _ = try RouteNetlink(namespace: namespace).links()
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net") == before)
    }

    @Test func aNamespaceIsSeparateFromTheHost() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let namespace = try lab.namespace()
        let name = "atl-t\(UUID().uuidString.prefix(6).lowercased())"
        let inside = try RouteNetlink(namespace: namespace)
        _ = try inside.createBridge(name: name)
        #expect(try inside.link(named: name) != nil)
        #expect(try RouteNetlink().link(named: name) == nil)
        let fd = try namespace.open()
        #expect(fd.rawValue >= 0)
    }

    @Test func removingUnmountsAndDeletesTheFile() throws {
        let path = NamespaceLab.scratchPath()
        _ = try NamespaceLab()
        let namespace = try NetworkNamespace.create(at: path)
        try NetworkNamespace.remove(at: namespace.path)
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!NamespaceLab.isMounted(path))
        try NetworkNamespace.remove(at: path)  // a second time: nothing there, no error
    }

    @Test func creatingInAMissingDirectoryLeavesNothingBehind() throws {
        let path = "/run/atoll-test-missing-\(UUID().uuidString.prefix(8))/netns"
        let error = #expect(throws: AtollError.self) { try NetworkNamespace.create(at: path) }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains(path) == true)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func creatingOverAnExistingFileFailsAndLeavesItAlone() throws {
        let lab = try NamespaceLab()
        defer { lab.removeAll() }
        let existing = try lab.namespace()
        let error = #expect(throws: AtollError.self) { try NetworkNamespace.create(at: existing.path) }
        #expect(error?.code == .alreadyExists)
        #expect(NamespaceLab.isMounted(existing.path))
        #expect(try RouteNetlink(namespace: existing).link(named: "lo")?.isUp == true)
    }
}
