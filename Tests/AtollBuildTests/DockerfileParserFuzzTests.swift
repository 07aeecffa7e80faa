import AtollCore
import Testing

@testable import AtollBuild

/// SplitMix64: a small seeded generator, so a failing input can be found again.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Pieces that reach the parser's corners when strung together at random.
private let fragments = [
    "FROM ", "FROM a AS b", "RUN ", "COPY ", "ADD ", "ARG ", "ONBUILD ", "ENV ", "SHELL ", "HEALTHCHECK ", "CMD ",
    "<<EOF", "<<-EOF", "<<\"EOF", "<<'", "EOF", "\tEOF", "\\", "`", "\n", "\r\n", "\r", "\"", "'", "$", "${", "{", "}",
    ":-", "[", "]", "[\"a\"]", "--", "--from=", "--mount=x", "--link", "=", "#", " ", "\t", "# escape=`\n",
    "# syntax=x\n", "a", "/", "é", "\u{FEFF}", "\u{0}", "\u{301}", "🙂", "3<<", "AS", "\\\n",
]

private let sample = """
    # syntax=docker/dockerfile:1
    ARG BASE=alpine
    FROM --platform=$BUILDPLATFORM $BASE AS build
    RUN apk add --no-cache make \\
        # tools
        && make
    RUN <<-EOF
    \techo "${A:-b}"
    \tEOF
    COPY --from=build --chown=1:1 ["a b", "/dst/"]
    COPY <<EOF /etc/x
    body
    EOF
    FROM scratch
    ENV A="x y" B=$C
    CMD ["/app"]
    """

/// Parses `text`, expecting success or an `invalidArgument` error naming the file.
private func expectParsesOrFailsCleanly(_ text: String) {
    do {
        _ = try Dockerfile.parse(text, name: "Fuzzfile")
    } catch let error as AtollError {
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("Fuzzfile"), "\(error.message) for \(String(reflecting: text))")
    } catch {
        Issue.record("not an AtollError: \(error) for \(String(reflecting: text))")
    }
}

struct DockerfileParserFuzzTests {
    @Test func randomFragmentsNeverCrashTheParser() {
        var generator = SeededGenerator(state: 0xD0C4_E7F1)
        for _ in 0..<3000 {
            let count = Int.random(in: 0...40, using: &generator)
            let text = (0..<count).map { _ in fragments.randomElement(using: &generator) ?? "" }.joined()
            expectParsesOrFailsCleanly(text)
            expectParsesOrFailsCleanly("FROM x\n" + text)
        }
    }

    @Test func randomBytesNeverCrashTheParser() {
        var generator = SeededGenerator(state: 42)
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            expectParsesOrFailsCleanly(String(decoding: bytes, as: UTF8.self))
        }
    }

    @Test func everyTruncationOfADockerfileParsesOrFailsCleanly() throws {
        #expect(try Dockerfile.parse(sample).stages.count == 2)
        let scalars = Array(sample.unicodeScalars)
        for end in 0...scalars.count {
            expectParsesOrFailsCleanly(String(String.UnicodeScalarView(scalars[..<end])))
            expectParsesOrFailsCleanly(String(String.UnicodeScalarView(scalars[end...])))
        }
    }

    @Test func randomWordsNeverCrashTheExpander() {
        var generator = SeededGenerator(state: 7)
        for escape: Character in ["\\", "`"] {
            let expander = WordExpander(environment: ["A": "a", "E": ""], escape: escape)
            for _ in 0..<3000 {
                let count = Int.random(in: 0...12, using: &generator)
                let word = (0..<count).map { _ in fragments.randomElement(using: &generator) ?? "" }.joined()
                do {
                    _ = try expander.expand(word)
                    _ = try expander.words(word)
                } catch let error as AtollError {
                    #expect(error.message.hasPrefix("invalid word"))
                } catch {
                    Issue.record("not an AtollError: \(error)")
                }
            }
        }
    }
}
