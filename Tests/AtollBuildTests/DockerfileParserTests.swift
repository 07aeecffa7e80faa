import AtollCore
import AtollOCI
import Testing

@testable import AtollBuild

/// The instructions of the only stage of `FROM scratch` followed by `body`.
private func instructions(_ body: String) throws -> [Instruction] {
    try #require(try Dockerfile.parse("FROM scratch\n" + body).stages.first).instructions
}

private func commands(_ body: String) throws -> [Command] {
    try instructions(body).map(\.command)
}

private func command(_ body: String) throws -> Command {
    try #require(try commands(body).first)
}

private func run(_ form: CommandForm, heredocs: [Heredoc] = [], network: String? = nil) -> Command {
    .run(RunCommand(form: form, heredocs: heredocs, network: network))
}

struct DockerfileParserTests {
    static let wholeFiles: [(String, Dockerfile)] = [
        (
            """
            ARG BASE=alpine:3.20
            ARG VERSION
            FROM $BASE AS Build
            ARG VERSION
            RUN make VERSION=$VERSION
            FROM scratch
            COPY --from=build /out/app /app
            CMD ["/app"]
            """,
            Dockerfile(
                metaArgs: [ArgDeclaration(name: "BASE", defaultValue: "alpine:3.20"), ArgDeclaration(name: "VERSION")],
                stages: [
                    Stage(
                        index: 0, name: "build", base: "$BASE", line: 3,
                        instructions: [
                            Instruction(line: 4, text: "ARG VERSION", command: .arg([ArgDeclaration(name: "VERSION")])),
                            Instruction(
                                line: 5, text: "RUN make VERSION=$VERSION",
                                command: run(.shell("make VERSION=$VERSION"))),
                        ]),
                    Stage(
                        index: 1, base: "scratch", line: 6,
                        instructions: [
                            Instruction(
                                line: 7, text: "COPY --from=build /out/app /app",
                                command: .copy(CopyCommand(sources: ["/out/app"], destination: "/app", from: "build"))),
                            Instruction(line: 8, text: #"CMD ["/app"]"#, command: .config(#"CMD ["/app"]"#)),
                        ]),
                ])
        ),
        (
            """
            # syntax=docker/dockerfile:1
            # escape=`

            # a comment
            from --platform=linux/arm64 mcr.example/base as win
            run dir `
                c:\\
            """,
            Dockerfile(
                syntax: "docker/dockerfile:1", escape: "`",
                stages: [
                    Stage(
                        index: 0, name: "win", base: "mcr.example/base", platform: "linux/arm64", line: 5,
                        instructions: [
                            Instruction(line: 6, text: "run dir     c:\\", command: run(.shell("dir     c:\\")))
                        ])
                ])
        ),
        (
            """
            FROM busybox
            RUN <<EOF
            echo hello
            EOF
            WORKDIR /app
            """,
            Dockerfile(stages: [
                Stage(
                    index: 0, base: "busybox", line: 1,
                    instructions: [
                        Instruction(
                            line: 2, text: "RUN <<EOF",
                            command: run(
                                .shell("<<EOF"),
                                heredocs: [Heredoc(name: "EOF", content: "echo hello\n", expands: true)])),
                        Instruction(line: 5, text: "WORKDIR /app", command: .config("WORKDIR /app")),
                    ])
            ])
        ),
    ]

    @Test(arguments: wholeFiles)
    func aDockerfileParsesIntoItsModel(text: String, expected: Dockerfile) throws {
        #expect(try Dockerfile.parse(text) == expected)
    }

    @Test func stagesAreNumberedAndNamedInLowerCase() throws {
        let file = try Dockerfile.parse("FROM a AS One\nFROM b\nFROM one AS three.x-y_z\n")
        #expect(file.stages.map(\.index) == [0, 1, 2])
        #expect(file.stages.map(\.name) == ["one", nil, "three.x-y_z"])
        #expect(file.stages.map(\.base) == ["a", "b", "one"])
        #expect(file.stages.map(\.line) == [1, 2, 3])
    }

    @Test func instructionKeywordsAreCaseInsensitiveAndKeptAsWritten() throws {
        let all = try instructions("Run a\nworkDir /x\ncopy a b\n")
        #expect(all.map(\.text) == ["Run a", "workDir /x", "copy a b"])
        #expect(all[1].command == .config("workDir /x"))
    }
}

struct ParserDirectiveTests {
    @Test func theSyntaxDirectiveIsRecorded() throws {
        #expect(try Dockerfile.parse("# syntax=docker/dockerfile:1.7\nFROM x").syntax == "docker/dockerfile:1.7")
        #expect(try Dockerfile.parse("FROM x").syntax == nil)
    }

    @Test(arguments: ["# escape=`", "#escape=`", "# ESCAPE = `  ", "  # Escape=`", "# syntax=x\n# escape=`"])
    func theEscapeDirectiveTakesABacktick(directive: String) throws {
        let file = try Dockerfile.parse(directive + "\nFROM x\nRUN a `\n b")
        #expect(file.escape == "`")
        #expect(file.stages[0].instructions.map(\.text) == ["RUN a  b"])
    }

    @Test func theEscapeDirectiveTakesABackslash() throws {
        let file = try Dockerfile.parse("# escape=\\\nFROM x\nRUN a \\\n b")
        #expect(file.escape == "\\")
        #expect(file.stages[0].instructions.map(\.text) == ["RUN a  b"])
    }

    @Test func theCheckDirectiveIsAccepted() throws {
        let file = try Dockerfile.parse("# check=skip=all\n# escape=`\nFROM x")
        #expect(file.escape == "`")
    }

    @Test(arguments: [
        "# a comment\n# escape=`",
        "\n# escape=`",
        "# unknown=directive\n# escape=`",
        "FROM x\n# escape=`",
    ])
    func aDirectiveAfterAnythingElseIsAComment(prefix: String) throws {
        let text = prefix.hasPrefix("FROM") ? prefix + "\nRUN a`" : prefix + "\nFROM x\nRUN a`"
        let file = try Dockerfile.parse(text)
        #expect(file.escape == "\\")
        #expect(file.stages[0].instructions.map(\.text) == ["RUN a`"])
    }
}

struct LineContinuationTests {
    @Test func aBackslashAtTheEndOfALineJoinsTheNextOne() throws {
        let all = try instructions("RUN apt-get update \\\n    && apt-get install -y x\nUSER me\n")
        #expect(all.map(\.text) == ["RUN apt-get update     && apt-get install -y x", "USER me"])
        #expect(all.map(\.line) == [2, 4])
    }

    @Test func blanksAfterTheEscapeAreAllowed() throws {
        #expect(try instructions("RUN a \\ \t\nb").map(\.text) == ["RUN a b"])
    }

    @Test func aBacktickJoinsLinesOnlyWithTheEscapeDirective() throws {
        #expect(try instructions("RUN a `\nRUN b").map(\.text) == ["RUN a `", "RUN b"])
        let file = try Dockerfile.parse("# escape=`\nFROM x\nRUN copy c:\\ `\n  d:\\\nRUN b\\\n")
        #expect(file.stages[0].instructions.map(\.text) == ["RUN copy c:\\   d:\\", "RUN b\\"])
    }

    @Test func commentsAndBlankLinesInsideAContinuationAreDropped() throws {
        let all = try instructions("RUN a \\\n# one\n   # two\n\n  \t\n  b \\\n#three\n  c\nUSER x")
        #expect(all.map(\.text) == ["RUN a   b   c", "USER x"])
        #expect(all.map(\.line) == [2, 10])
    }

    @Test func commentLinesAndBlankLinesAreSkipped() throws {
        let all = try instructions("\n# RUN nothing\n   # indented\n\nRUN a # not a comment\n")
        #expect(all.map(\.text) == ["RUN a # not a comment"])
        #expect(all.map(\.line) == [6])
    }

    @Test func crlfLineEndsAreAccepted() throws {
        let file = try Dockerfile.parse("# escape=`\r\nFROM x\r\nRUN a `\r\n b\r\nUSER me\r\n")
        #expect(file.escape == "`")
        #expect(file.stages[0].instructions.map(\.text) == ["RUN a  b", "USER me"])
    }

    @Test func aByteOrderMarkIsIgnored() throws {
        let file = try Dockerfile.parse("\u{FEFF}# escape=`\nFROM x")
        #expect(file.escape == "`")
    }

    @Test func aContinuationAtTheEndOfTheFileEndsTheInstruction() throws {
        #expect(try instructions("RUN a \\").map(\.text) == ["RUN a"])
    }
}

struct InstructionFormTests {
    @Test(arguments: [
        ("RUN make all", run(.shell("make all"))),
        (#"RUN ["make", "all"]"#, run(.exec(["make", "all"]))),
        (#"RUN [ "sh" , "-c", "a b" ]"#, run(.exec(["sh", "-c", "a b"]))),
        ("RUN [not json", run(.shell("[not json"))),
        (#"RUN ["a", 1]"#, run(.shell(#"["a", 1]"#))),
        ("RUN --network=none make", run(.shell("make"), network: "none")),
        (#"RUN --network=host ["make"]"#, run(.exec(["make"]), network: "host")),
        ("RUN --network=default -- --weird", run(.shell("--weird"), network: "default")),
    ])
    func runTakesShellAndExecForms(line: String, expected: Command) throws {
        #expect(try command(line) == expected)
    }

    @Test(arguments: [
        ("COPY a b /dst/", CopyCommand(sources: ["a", "b"], destination: "/dst/")),
        (#"COPY ["a b", "c", "/dst/"]"#, CopyCommand(sources: ["a b", "c"], destination: "/dst/")),
        (#"COPY "my file" $DIR/"#, CopyCommand(sources: [#""my file""#], destination: "$DIR/")),
        (
            "COPY --from=build --chown=app:app --chmod=0755 --link /out /app",
            CopyCommand(
                sources: ["/out"], destination: "/app", from: "build", chown: "app:app", chmod: "0755", link: true)
        ),
        ("COPY --link=false a b", CopyCommand(sources: ["a"], destination: "b")),
        (#"COPY --chown="1000:1000" a b"#, CopyCommand(sources: ["a"], destination: "b", chown: "1000:1000")),
        ("COPY -- --a b", CopyCommand(sources: ["--a"], destination: "b")),
    ])
    func copyTakesFlagsSourcesAndADestination(line: String, expected: CopyCommand) throws {
        #expect(try command(line) == .copy(expected))
    }

    @Test func addTakesTheFlagsItSupports() throws {
        #expect(
            try command("ADD --chown=1:2 --chmod=644 --link https://example.com/x.tgz /x/")
                == .add(
                    CopyCommand(
                        sources: ["https://example.com/x.tgz"], destination: "/x/", chown: "1:2", chmod: "644",
                        link: true)))
        #expect(try command(#"ADD ["a.tar", "/"]"#) == .add(CopyCommand(sources: ["a.tar"], destination: "/")))
    }

    @Test func argDeclaresNamesWithDefaultsAsWritten() throws {
        #expect(try command("ARG A") == .arg([ArgDeclaration(name: "A")]))
        #expect(
            try command(#"ARG A=1 B="x y" C=$D E= F='$G'"#)
                == .arg([
                    ArgDeclaration(name: "A", defaultValue: "1"),
                    ArgDeclaration(name: "B", defaultValue: #""x y""#),
                    ArgDeclaration(name: "C", defaultValue: "$D"),
                    ArgDeclaration(name: "E", defaultValue: ""),
                    ArgDeclaration(name: "F", defaultValue: "'$G'"),
                ]))
    }

    @Test func shellTakesAJSONArray() throws {
        #expect(
            try command(#"SHELL ["/bin/bash", "-o", "pipefail", "-c"]"#)
                == .shell(["/bin/bash", "-o", "pipefail", "-c"]))
    }

    @Test func maintainerTakesTheRestOfTheLine() throws {
        #expect(try command("MAINTAINER Jane Doe <jane@example.com>") == .maintainer("Jane Doe <jane@example.com>"))
    }

    @Test(arguments: [
        #"CMD ["nginx", "-g", "daemon off;"]"#,
        "CMD echo $HOME",
        "ENTRYPOINT exec app",
        #"ENV A=1 B="two words""#,
        "ENV LEGACY some value",
        "ENV P=$PATH:/x",
        "EXPOSE 80 53/udp",
        "HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/",
        "HEALTHCHECK NONE",
        #"LABEL org.opencontainers.image.title="x y""#,
        "ONBUILD RUN make",
        "ONBUILD COPY . /src",
        "STOPSIGNAL SIGTERM",
        "STOPSIGNAL $SIGNAL",
        "USER app:app",
        #"VOLUME ["/data", "/logs"]"#,
        "VOLUME /data /logs",
        "WORKDIR /app",
    ])
    func configInstructionsKeepTheirTextForConfigChange(line: String) throws {
        #expect(try command(line) == .config(line))
    }

    @Test func theConfigTextIsTheJoinedLineConfigChangeReads() throws {
        let text = try #require(
            try commands("ENV A=1 \\\n    B=2\n").first.flatMap { command -> String? in
                if case .config(let text) = command { return text }
                return nil
            })
        #expect(text == "ENV A=1     B=2")
        #expect(try ConfigChange.parse(text) == .env([.init("A", "1"), .init("B", "2")]))
    }

    @Test func fromTakesAPlatformAndAName() throws {
        let stage = try #require(
            try Dockerfile.parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS Builder").stages.first)
        #expect(stage.platform == "$BUILDPLATFORM")
        #expect(stage.base == "golang:1.22")
        #expect(stage.name == "builder")
    }
}

struct HeredocTests {
    @Test func runWithOnlyAHeredocRunsItsBody() throws {
        #expect(
            try commands("RUN <<EOF\nset -e\necho hi\nEOF\nUSER x")
                == [
                    run(.shell("<<EOF"), heredocs: [Heredoc(name: "EOF", content: "set -e\necho hi\n", expands: true)]),
                    .config("USER x"),
                ])
    }

    @Test func runFeedsHeredocsToACommand() throws {
        #expect(
            try command("RUN python3 <<EOF\nprint('hi')\nEOF")
                == run(
                    .shell("python3 <<EOF"), heredocs: [Heredoc(name: "EOF", content: "print('hi')\n", expands: true)]))
    }

    @Test func severalHeredocsOnALineAreReadInOrder() throws {
        let all = try instructions("RUN cat <<A - 3<<B >out\none\nA\ntwo\nB\nUSER x")
        #expect(
            all[0].command
                == run(
                    .shell("cat <<A - 3<<B >out"),
                    heredocs: [
                        Heredoc(name: "A", content: "one\n", expands: true),
                        Heredoc(name: "B", content: "two\n", expands: true),
                    ]))
        #expect(all.map(\.line) == [2, 7])
    }

    @Test func aDashStripsLeadingTabsFromTheBodyAndTheTerminator() throws {
        #expect(
            try command("RUN <<-EOF\n\techo a\n\t\t echo b\n  c\n\t\tEOF\n")
                == run(
                    .shell("<<-EOF"), heredocs: [Heredoc(name: "EOF", content: "echo a\n echo b\n  c\n", expands: true)]
                ))
    }

    @Test(arguments: [#"<<"EOF""#, "<<'EOF'", #"<<-"EOF""#, #"<<E"O"F"#])
    func aQuotedDelimiterTurnsExpansionOff(marker: String) throws {
        #expect(
            try command("RUN cat \(marker)\n$HOME\nEOF")
                == run(.shell("cat \(marker)"), heredocs: [Heredoc(name: "EOF", content: "$HOME\n", expands: false)]))
    }

    @Test func theBodyIsTakenVerbatim() throws {
        let body = "# not a comment\n\nline with \\\n  \tindent\r\n"
        #expect(
            try command("RUN <<EOF\n\(body)EOF\r\n")
                == run(
                    .shell("<<EOF"),
                    heredocs: [
                        Heredoc(name: "EOF", content: "# not a comment\n\nline with \\\n  \tindent\n", expands: true)
                    ]
                ))
    }

    @Test func aHeredocCanFollowAContinuation() throws {
        #expect(
            try command("RUN cat \\\n  <<EOF\nx\nEOF")
                == run(.shell("cat   <<EOF"), heredocs: [Heredoc(name: "EOF", content: "x\n", expands: true)]))
    }

    @Test func copyAndAddTakeHeredocsAsSourcesByName() throws {
        #expect(
            try command("COPY --chmod=755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello\nEOF")
                == .copy(
                    CopyCommand(
                        sources: ["EOF"], destination: "/usr/local/bin/hello", chmod: "755",
                        heredocs: [Heredoc(name: "EOF", content: "#!/bin/sh\necho hello\n", expands: true)])))
        #expect(
            try command("ADD <<one <<'two' file /dst/\n1\none\n2\ntwo")
                == .add(
                    CopyCommand(
                        sources: ["one", "two", "file"], destination: "/dst/",
                        heredocs: [
                            Heredoc(name: "one", content: "1\n", expands: true),
                            Heredoc(name: "two", content: "2\n", expands: false),
                        ])))
    }

    @Test(arguments: [
        #"RUN ["cat", "<<EOF"]"#, #"RUN echo "<<EOF""#, "RUN echo '<<EOF'", "RUN cat<<EOF", "RUN cat <<<EOF",
        "RUN echo \\<<EOF", "ENV A=<<EOF",
    ])
    func markersThatAreNotHeredocsOpenNone(line: String) throws {
        let all = try instructions(line + "\nUSER x\n")
        #expect(all.map(\.text) == [line, "USER x"])
        if case .run(let command) = all[0].command { #expect(command.heredocs.isEmpty) }
    }

    @Test func anEmptyBodyIsEmpty() throws {
        #expect(
            try command("RUN <<EOF\nEOF")
                == run(.shell("<<EOF"), heredocs: [Heredoc(name: "EOF", content: "", expands: true)]))
    }
}
