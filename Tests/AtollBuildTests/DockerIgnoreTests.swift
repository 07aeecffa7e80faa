import AtollCore
import Foundation
import Testing

@testable import AtollBuild

/// One row: with these patterns, is this context-relative path excluded?
struct IgnoreCase: CustomTestStringConvertible, Sendable {
    var patterns: [String]
    var path: String
    var excluded: Bool

    init(_ patterns: [String], _ path: String, _ excluded: Bool) {
        self.patterns = patterns
        self.path = path
        self.excluded = excluded
    }

    var testDescription: String { "\(patterns) \(excluded ? "excludes" : "keeps") \"\(path)\"" }
}

struct DockerIgnoreTests {
    /// From Docker's .dockerignore documentation and moby/patternmatcher's tests.
    static let cases: [IgnoreCase] = [
        // Docker's documentation.
        IgnoreCase(["*/temp*"], "somedir/temporary.txt", true),
        IgnoreCase(["*/temp*"], "somedir/temp", true),
        IgnoreCase(["*/temp*"], "somedir/temp/inside.txt", true),
        IgnoreCase(["*/temp*"], "temporary.txt", false),
        IgnoreCase(["*/temp*"], "a/b/temporary.txt", false),
        IgnoreCase(["*/*/temp*"], "somedir/subdir/temporary.txt", true),
        IgnoreCase(["*/*/temp*"], "somedir/temporary.txt", false),
        IgnoreCase(["temp?"], "tempa", true),
        IgnoreCase(["temp?"], "temp", false),
        IgnoreCase(["temp?"], "tempab", false),
        IgnoreCase(["temp?"], "dir/tempa", false),
        IgnoreCase(["**/*.go"], "main.go", true),
        IgnoreCase(["**/*.go"], "cmd/tool/main.go", true),
        IgnoreCase(["**/*.go"], "main.gox", false),
        IgnoreCase(["*.md", "!README.md"], "README.md", false),
        IgnoreCase(["*.md", "!README.md"], "CHANGES.md", true),
        IgnoreCase(["*.md", "!README.md"], "docs/guide.md", false),
        IgnoreCase(["*.md", "!README*.md", "README-secret.md"], "README-secret.md", true),
        IgnoreCase(["*.md", "!README*.md", "README-secret.md"], "README-public.md", false),
        IgnoreCase(["*.md", "README-secret.md", "!README*.md"], "README-secret.md", false),
        IgnoreCase(["node_modules"], "node_modules", true),
        IgnoreCase(["node_modules"], "node_modules/x/y", true),
        IgnoreCase(["node_modules"], "src/node_modules", false),
        IgnoreCase(["**"], "anything", true),
        IgnoreCase(["**"], "deep/down/file", true),
        IgnoreCase(["/foo"], "foo", true),
        IgnoreCase(["/foo"], "foo/bar", true),
        IgnoreCase(["/foo"], "bar/foo", false),
        IgnoreCase(["./x"], "x", true),
        IgnoreCase(["x/"], "x/y", true),
        IgnoreCase(["a/../b"], "b", true),
        IgnoreCase(["a//b/./c"], "a/b/c", true),
        IgnoreCase(["a/**/b"], "a/b", true),
        IgnoreCase(["a/**/b"], "a/x/b", true),
        IgnoreCase(["a/**/b"], "a/x/y/b", true),
        IgnoreCase(["a/**/b"], "a/x/b/c", true),
        IgnoreCase(["a/**/b"], "a/xb", false),
        IgnoreCase(["a/**/b"], "b", false),
        // Exceptions re-include entries inside excluded directories; the last match wins.
        IgnoreCase(["docs", "!docs/keep.md"], "docs/keep.md", false),
        IgnoreCase(["docs", "!docs/keep.md"], "docs/other.md", true),
        IgnoreCase(["docs", "!docs/keep.md"], "docs", true),
        IgnoreCase(["!docs/keep.md", "docs"], "docs/keep.md", true),
        IgnoreCase(["*", "!src"], "src/main.swift", false),
        IgnoreCase(["*", "!src", "src/*.tmp"], "src/scratch.tmp", true),
        IgnoreCase(["*", "!src", "src/*.tmp"], "src/main.swift", false),
        IgnoreCase(["build", "!build/keep", "build/keep/tmp"], "build/keep/tmp/x", true),
        IgnoreCase(["build", "!build/keep", "build/keep/tmp"], "build/keep/y", false),
        // moby/patternmatcher's TestMatches.
        IgnoreCase(["**/"], "file", true),
        IgnoreCase(["**/**"], "dir/file", true),
        IgnoreCase(["dir/**"], "dir/file", true),
        IgnoreCase(["dir/**"], "dir/dir2/file", true),
        IgnoreCase(["**/dir"], "dir", true),
        IgnoreCase(["**/dir"], "dir/file", true),
        IgnoreCase(["**/dir2/*"], "dir/dir2/file", true),
        IgnoreCase(["**/dir2/**"], "dir/dir2/dir3/file", true),
        IgnoreCase(["**file"], "file", true),
        IgnoreCase(["**file"], "dir/dir/file", true),
        IgnoreCase(["**/file"], "dir/dir/file", true),
        IgnoreCase(["**/file*"], "dir/dir/file.txt", true),
        IgnoreCase(["**/file*txt"], "dir/dir/file.txt", true),
        IgnoreCase(["**/file*.txt*"], "dir/dir/file.txt", true),
        IgnoreCase(["**/**/*.txt"], "dir/dir/file.txt", true),
        IgnoreCase(["**/**/*.txt2"], "dir/dir/file.txt", false),
        IgnoreCase(["**/*.txt"], "file.txt", true),
        IgnoreCase(["**/**/*.txt"], "file.txt", true),
        IgnoreCase(["a**/*.txt"], "a/file.txt", true),
        IgnoreCase(["a**/*.txt"], "a/dir/dir/file.txt", true),
        IgnoreCase(["a/*.txt"], "a/dir/file.txt", false),
        IgnoreCase(["a/*.txt"], "a/file.txt", true),
        IgnoreCase(["a/*.txt**"], "a/file.txt", true),
        IgnoreCase(["a[b-d]e"], "ae", false),
        IgnoreCase(["a[b-d]e"], "ace", true),
        IgnoreCase(["a[b-d]e"], "aae", false),
        IgnoreCase(["a[^b-d]e"], "aze", true),
        IgnoreCase(["a[^b-d]e"], "ace", false),
        IgnoreCase([".*"], ".foo", true),
        IgnoreCase([".*"], "foo", false),
        IgnoreCase(["abc.def"], "abcdef", false),
        IgnoreCase(["abc.def"], "abc.def", true),
        IgnoreCase(["abc.def"], "abcZdef", false),
        IgnoreCase(["abc?def"], "abcZdef", true),
        IgnoreCase(["abc?def"], "abcdef", false),
        IgnoreCase(["a\\\\"], "a\\", true),
        IgnoreCase(["a\\*b"], "a*b", true),
        IgnoreCase(["a\\*b"], "axb", false),
        IgnoreCase(["**/foo/bar"], "foo/bar", true),
        IgnoreCase(["**/foo/bar"], "dir/dir2/foo/bar", true),
        IgnoreCase(["abc/**"], "abc", false),
        IgnoreCase(["abc/**"], "abc/def/ghi", true),
        IgnoreCase(["**/.foo"], ".foo", true),
        IgnoreCase(["**/.foo"], "bar.foo", false),
        IgnoreCase(["a(b)c/def"], "a(b)c/def", true),
        IgnoreCase(["a(b)c/def"], "a(b)c/xyz", false),
        IgnoreCase(["a.|)$(}+{bc"], "a.|)$(}+{bc", true),
        IgnoreCase(["dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
        // Docker's own quirks, kept: "**" then a name is a plain suffix, and "[!x]" is not negated.
        IgnoreCase(["**file"], "dir/myfile", true),
        IgnoreCase(["temp[!x]"], "temp!", true),
        IgnoreCase(["temp[!x]"], "tempy", false),
        IgnoreCase(["héllo*"], "héllo-wörld", true),
        IgnoreCase(["h?llo"], "héllo", true),
        // The context itself is never excluded.
        IgnoreCase(["**"], ".", false),
    ]

    @Test(arguments: cases)
    func aPathIsExcludedAsDockerDecides(_ row: IgnoreCase) throws {
        let ignore = try DockerIgnore(patterns: row.patterns)
        #expect(ignore.excludes(row.path) == row.excluded)
    }

    @Test(arguments: cases)
    func theWalkersIncrementalEvaluationAgreesWithExcludes(_ row: IgnoreCase) throws {
        let ignore = try DockerIgnore(patterns: row.patterns)
        guard row.path != "." else { return }
        var matcher = DockerIgnore.Matcher()
        var matched: [Bool]?
        var prefix = ""
        var excluded = false
        for component in row.path.split(separator: "/") {
            prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
            (excluded, matched) = ignore.evaluate(prefix, parent: matched, matcher: &matcher)
        }
        #expect(excluded == row.excluded)
    }

    @Test(arguments: [
        (["docs", "!docs/keep.md"], "docs", true),
        (["docs", "!docs/keep.md"], "docs/sub", false),
        (["docs", "!docs/keep.md"], "src", false),
        (["docs"], "docs", false),
        (["*", "!**/*.go"], "vendor", true),
        (["*", "!src/*/main.go"], "src", true),
        (["*", "!src/*/main.go"], "src/tool", true),
        (["*", "!src/*/main.go"], "src/tool/internal", false),
        (["*", "!src/*/main.go"], "lib", false),
        (["build", "!build/**"], "build", true),
        (["build", "!*/keep"], "build", true),
        (["build", "!*/keep"], "build/x", false),
        (["a", "!a/**/z"], "a/b/c", true),
        (["a", "!a?/z"], "a", false),
        (["a", "!a[0-9]/z"], "a1", true),
    ])
    func anExcludedDirectoryIsEnteredOnlyWhenAnExceptionMayMatchBelowIt(
        patterns: [String], directory: String, expected: Bool
    ) throws {
        let ignore = try DockerIgnore(patterns: patterns)
        #expect(ignore.mayIncludeBelow(directory) == expected)
    }

    @Test(arguments: ["[", "a[", "[]", "[]a]", "a[b-", "[-a]", "[a-]", "[z-a]", "[^]", "abc\\", "!", "!/"])
    func aMalformedPatternIsAnInvalidArgumentThatNamesIt(_ pattern: String) {
        do {
            _ = try DockerIgnore(patterns: ["ok", pattern])
            Issue.record("pattern \(pattern) was accepted")
        } catch let error as AtollError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("\"\(pattern)\""))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func patternsAreTrimmedCleanedAndLoseTheirLeadingSlash() throws {
        let ignore = try DockerIgnore(patterns: ["  /foo/  ", "./x", "a/../b", "!/keep", "!  spaced ", "", "   ", "/"])
        #expect(ignore.patterns == ["foo", "x", "b", "!keep", "!spaced", "/"])
    }

    @Test func fileTextSkipsCommentsAndBlankLines() throws {
        let text = "\u{FEFF}# a comment\r\n*.md\r\n\n   \n  !README.md  \n # not a comment\nlast"
        let ignore = try DockerIgnore(contentsOf: text)
        #expect(ignore.patterns == ["*.md", "!README.md", "# not a comment", "last"])
        #expect(ignore.excludes("CHANGES.md"))
        #expect(!ignore.excludes("README.md"))
        #expect(ignore.excludes("last"))
    }

    @Test func anEmptyFileExcludesNothing() throws {
        let ignore = try DockerIgnore(contentsOf: "")
        #expect(ignore.patterns.isEmpty)
        #expect(!ignore.excludes("anything"))
        #expect(!ignore.mayIncludeBelow("anything"))
    }

    @Test func loadReadsTheContextsDockerignoreOrNothing() throws {
        let directory = "/tmp/atoll-dockerignore-test-\(UInt64.random(in: 0...UInt64.max))"
        try Syscall.mkdirAll(directory)
        defer { try? FileSystem.removeTree(directory) }

        #expect(try DockerIgnore.load(contextDirectory: directory) == DockerIgnore(patterns: []))

        try FileSystem.writeFile(directory + "/.dockerignore", Array("node_modules\n!node_modules/keep\n".utf8))
        let ignore = try DockerIgnore.load(contextDirectory: directory)
        #expect(ignore.patterns == ["node_modules", "!node_modules/keep"])
        #expect(ignore.excludes("node_modules/x"))

        try FileSystem.writeFile(directory + "/.dockerignore", Array("ok\nbad[\n".utf8))
        do {
            _ = try DockerIgnore.load(contextDirectory: directory)
            Issue.record("a malformed .dockerignore was accepted")
        } catch let error as AtollError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("\"bad[\""))
            #expect(error.message.contains(directory + "/.dockerignore"))
        }
    }
}
