import AtollCore
import Testing

@testable import AtollBuild

/// The message `Dockerfile.parse` fails with, or nil when it parses.
private func failure(_ text: String, name: String = "Dockerfile") -> String? {
    do {
        _ = try Dockerfile.parse(text, name: name)
        return nil
    } catch let error as AtollError {
        return error.code == .invalidArgument ? error.message : "wrong code \(error.code): \(error.message)"
    } catch {
        return "not an AtollError: \(error)"
    }
}

struct DockerfileParserErrorTests {
    static let wholeFileErrors: [(String, String)] = [
        ("", "Dockerfile: the Dockerfile has no instructions"),
        ("# syntax=docker/dockerfile:1\n# only comments\n\n  \n", "Dockerfile: the Dockerfile has no instructions"),
        ("ARG A=1\nARG B", "Dockerfile: the Dockerfile has no FROM"),
        ("ARG A\nRUN x\nFROM y", "Dockerfile:2: no FROM before RUN: only ARG may come before the first FROM"),
        ("# comment\nenv A=1\nFROM y", "Dockerfile:2: no FROM before ENV: only ARG may come before the first FROM"),
        ("FROM a AS b\nFROM c AS B", "Dockerfile:2: duplicate stage name \"b\" (first used on line 1)"),
        (
            "FROM a AS 1x",
            #"Dockerfile:1: invalid stage name "1x": it must start with a letter and contain only letters, digits, "-", "_" and ".""#
        ),
        (
            "FROM a AS b/c",
            #"Dockerfile:1: invalid stage name "b/c": it must start with a letter and contain only letters, digits, "-", "_" and ".""#
        ),
        ("FROM a b", "Dockerfile:1: FROM takes one or three arguments: FROM image [AS name]"),
        ("FROM a to b", "Dockerfile:1: FROM takes one or three arguments: FROM image [AS name]"),
        ("FROM", "Dockerfile:1: FROM requires at least one argument"),
        ("FROM --plat=x a", "Dockerfile:1: unknown flag \"--plat\" for FROM"),
        ("FROM --platform a", "Dockerfile:1: flag \"--platform\" needs a value (--platform=value)"),
        ("# escape=`\n# Escape=\\\nFROM x", "Dockerfile:2: the escape directive is given more than once"),
        ("# syntax=a\n# syntax=b\nFROM x", "Dockerfile:2: the syntax directive is given more than once"),
        ("# escape=/\nFROM x", "Dockerfile:1: invalid escape directive \"/\": use a backslash or a backtick"),
    ]

    @Test(arguments: wholeFileErrors)
    func aBadDockerfileFailsNamingTheLine(text: String, message: String) {
        #expect(failure(text) == message)
    }

    static let instructionErrors: [(String, String)] = [
        ("COPPY a b", "unknown instruction \"COPPY\" (did you mean COPY?)"),
        ("rnu x", "unknown instruction \"rnu\" (did you mean RUN?)"),
        ("BOGUS bar", "unknown instruction \"BOGUS\""),
        ("RUN --mount=type=cache,target=/root/.cache make", "RUN --mount is not supported"),
        ("RUN --security=insecure make", "RUN --security is not supported"),
        ("RUN --network=bridge make", "invalid RUN --network \"bridge\": use default, none or host"),
        ("RUN --network make", "flag \"--network\" needs a value (--network=value)"),
        ("RUN --network= make", "flag \"--network\" needs a value (--network=value)"),
        ("RUN --foo make", "unknown flag \"--foo\" for RUN"),
        ("RUN", "RUN requires at least one argument"),
        ("RUN --network=none", "RUN requires at least one argument"),
        ("RUN []", "RUN requires at least one argument"),
        ("COPY --from=a --from=b x y", "flag \"--from\" is given more than once"),
        ("COPY --link=maybe a b", "flag \"--link\" takes true or false, not \"maybe\""),
        ("COPY --parents a b", "COPY --parents is not supported"),
        ("COPY x", "COPY requires at least two arguments: one or more sources and a destination"),
        (#"COPY ["x"]"#, "COPY requires at least two arguments: one or more sources and a destination"),
        ("COPY", "COPY requires at least two arguments: one or more sources and a destination"),
        ("COPY a <<EOF\nx\nEOF", "COPY cannot take a heredoc as its destination"),
        ("ADD --from=a x y", "unknown flag \"--from\" for ADD"),
        ("ADD --checksum=sha256:abc x y", "ADD --checksum is not supported"),
        ("ADD --keep-git-dir=true x y", "ADD --keep-git-dir is not supported"),
        ("ADD x", "ADD requires at least two arguments: one or more sources and a destination"),
        ("ARG", "ARG requires at least one argument"),
        ("ARG =x", "ARG \"=x\" has no name"),
        ("ARG --x A", "unknown flag \"--x\" for ARG"),
        ("SHELL /bin/sh -c", #"SHELL requires a JSON array of strings: SHELL ["executable", "parameters"]"#),
        ("SHELL []", "SHELL requires at least one argument"),
        ("SHELL", "SHELL requires at least one argument"),
        ("MAINTAINER", "MAINTAINER requires at least one argument"),
        ("CMD", "CMD requires at least one argument"),
        ("CMD --help", "unknown flag \"--help\" for CMD"),
        ("ENTRYPOINT", "ENTRYPOINT requires at least one argument"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV A", "ENV must have two arguments"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("EXPOSE 80/xyz", "invalid protocol \"xyz\" in \"80/xyz\""),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK --interval=5s", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK --interval=x CMD true", "invalid duration \"x\" for --interval"),
        ("HEALTHCHECK --color=red CMD true", "unknown HEALTHCHECK flag \"--color\""),
        ("LABEL", "LABEL requires at least one argument"),
        ("LABEL a", "LABEL must have two arguments"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x", "chaining ONBUILD via ONBUILD ONBUILD is not allowed"),
        ("ONBUILD FROM x", "FROM is not allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER x", "MAINTAINER is not allowed as an ONBUILD trigger"),
        ("ONBUILD BOGUS x", "unknown instruction \"BOGUS\""),
        ("ONBUILD RUN --mount=type=bind make", "RUN --mount is not supported"),
        ("ONBUILD RUN <<EOF\nx\nEOF", "ONBUILD triggers cannot use heredocs"),
        ("STOPSIGNAL", "STOPSIGNAL requires at least one argument"),
        ("STOPSIGNAL SIGFOO", "unknown signal \"SIGFOO\""),
        ("USER", "USER requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ("VOLUME [\"\"]", "VOLUME cannot be an empty string"),
        ("WORKDIR", "WORKDIR requires at least one argument"),
        ("WORKDIR --x /a", "unknown flag \"--x\" for WORKDIR"),
        ("RUN <<EOF\necho never ends", "unterminated heredoc \"EOF\" (no line \"EOF\" ends it)"),
        ("RUN <<EOF\nEOF \n", "unterminated heredoc \"EOF\" (no line \"EOF\" ends it)"),
        ("RUN cat <<A <<B\na\nA\n", "unterminated heredoc \"B\" (no line \"B\" ends it)"),
        (#"RUN cat <<"EOF"#, "invalid word \"\\\"EOF\": missing closing double quote"),
    ]

    @Test(arguments: instructionErrors)
    func aBadInstructionFailsNamingItsLine(line: String, message: String) {
        #expect(failure("# a comment\nFROM scratch\n\n" + line) == "Dockerfile:4: " + message)
    }

    @Test func anErrorInAContinuedInstructionNamesItsFirstLine() {
        #expect(failure("FROM x\nRUN --mount=x \\\n  make \\\n  all") == "Dockerfile:2: RUN --mount is not supported")
    }

    @Test func theFileNameGivenIsTheOneErrorsShow() {
        #expect(
            failure("FROM x\nCOPPY a b", name: "build/Dockerfile.dev")
                == "build/Dockerfile.dev:2: unknown instruction \"COPPY\" (did you mean COPY?)")
    }

    @Test(arguments: ["ENV A=$B", "STOPSIGNAL $SIGNAL", "EXPOSE ${PORT}/tcp", "USER ${U:-app}", "LABEL $K=v"])
    func checksThatDependOnVariablesWaitForTheBuild(line: String) throws {
        #expect(failure("FROM x\n" + line) == nil)
    }
}
