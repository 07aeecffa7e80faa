import AtollCore
import Testing

@testable import AtollOCI

private func apply(_ lines: [String], to config: ImageConfig.Config = .init()) throws -> ImageConfig.Config {
    try ConfigChange.apply(lines, to: config)
}

@Suite struct ConfigChangeTests {
    @Test func cmdTakesExecAndShellForms() throws {
        #expect(try apply([#"CMD ["nginx", "-g", "daemon off;"]"#]).cmd == ["nginx", "-g", "daemon off;"])
        #expect(try apply(["CMD echo \"hello  world\" $HOME"]).cmd == ["/bin/sh", "-c", "echo \"hello  world\" $HOME"])
        #expect(try apply(["cmd [\"lower\"]"]).cmd == ["lower"])
        #expect(try apply(["CMD []"]).cmd == [])
        // Not a JSON array of strings: the shell form, as Docker falls back.
        #expect(try apply(["CMD [not json"]).cmd == ["/bin/sh", "-c", "[not json"])
        #expect(try apply(["CMD [1, 2]"]).cmd == ["/bin/sh", "-c", "[1, 2]"])
    }

    @Test func shellFormUsesTheConfigShell() throws {
        let config = ImageConfig.Config(shell: ["/bin/bash", "-lc"])
        #expect(try apply(["ENTRYPOINT exec app"], to: config).entrypoint == ["/bin/bash", "-lc", "exec app"])
    }

    @Test func entrypointClearsCmdUnlessCmdCameFirst() throws {
        let base = ImageConfig.Config(cmd: ["old"])
        let cleared = try apply([#"ENTRYPOINT ["/app"]"#], to: base)
        #expect(cleared.entrypoint == ["/app"])
        #expect(cleared.cmd == nil)
        let kept = try apply([#"CMD ["--help"]"#, #"ENTRYPOINT ["/app"]"#], to: base)
        #expect(kept.cmd == ["--help"])
        let after = try apply([#"ENTRYPOINT ["/app"]"#, #"CMD ["-v"]"#], to: base)
        #expect(after.cmd == ["-v"])
    }

    @Test func envTakesPairsWithQuotesAndEscapes() throws {
        let c = try apply([#"ENV K=V K2="v 2" A=a\ b C='x y' D="q\"q" E= F="\d""#])
        #expect(c.env == ["K=V", "K2=v 2", "A=a b", "C=x y", "D=q\"q", "E=", "F=\\d"])
    }

    @Test func envLegacyFormTakesTheRestOfTheLine() throws {
        #expect(try apply(["ENV GREETING hello   big world"]).env == ["GREETING=hello   big world"])
        #expect(try apply([#"ENV Q "quoted value""#]).env == ["Q=quoted value"])
    }

    @Test func envReplacesExistingVariablesAndExpands() throws {
        let base = ImageConfig.Config(env: ["PATH=/bin", "HOME=/root"])
        let c = try apply(
            [
                "ENV PATH=$PATH:/usr/local/bin",
                #"ENV A=${HOME}/a B=${NOPE:-fallback} C=${HOME:+set} D='$HOME' E=\$HOME F="$HOME""#,
            ], to: base)
        #expect(
            c.env == [
                "PATH=/bin:/usr/local/bin", "HOME=/root", "A=/root/a", "B=fallback", "C=set", "D=$HOME", "E=$HOME",
                "F=/root",
            ])
        // Later instructions see earlier ones.
        #expect(try apply(["ENV X=1", "ENV Y=${X}2"]).env == ["X=1", "Y=12"])
    }

    @Test func envErrors() {
        let cases: [(String, String)] = [
            ("ENV A=1 B", "can't find ="),
            ("ENV LONELY", "must have two arguments"),
            ("ENV =x", "names cannot be empty"),
            ("ENV A=\"open", "double-quote"),
            ("ENV A='open", "single-quote"),
            ("ENV A=${B", "missing '}'"),
            ("ENV", "ENV requires at least one argument"),
        ]
        for (line, fragment) in cases {
            let error = #expect(throws: AtollError.self, "\(line)") { try apply([line]) }
            #expect(error?.message.contains(fragment) == true, "\(line): \(error?.message ?? "")")
        }
    }

    @Test func exposeNormalisesPorts() throws {
        let c = try apply(["EXPOSE 80 443/tcp 53/udp 8000-8002 9000/SCTP"])
        #expect(
            c.exposedPorts.map { Set($0.keys) }
                == ["80/tcp", "443/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp", "9000/sctp"])
        for bad in ["EXPOSE 70000", "EXPOSE 80/xyz", "EXPOSE abc", "EXPOSE 90-80", "EXPOSE /tcp"] {
            #expect(throws: AtollError.self, "\(bad)") { try apply([bad]) }
        }
    }

    @Test func labelTakesPairsAndTheLegacyForm() throws {
        let c = try apply([#"LABEL a=b "c d"=e version="1.0 beta""#, "LABEL legacy some text"])
        #expect(c.labels == ["a": "b", "c d": "e", "version": "1.0 beta", "legacy": "some text"])
    }

    @Test func userWorkdirAndStopSignal() throws {
        var c = try apply(["USER nobody:nogroup", "WORKDIR /app", "WORKDIR sub/./dir", "STOPSIGNAL SIGQUIT"])
        #expect(c.user == "nobody:nogroup")
        #expect(c.workingDir == "/app/sub/dir")
        #expect(c.stopSignal == "SIGQUIT")
        c = try apply(["WORKDIR ../x"], to: c)
        #expect(c.workingDir == "/app/sub/x")
        #expect(try apply(["WORKDIR rel"]).workingDir == "/rel")
        #expect(try apply(["STOPSIGNAL 9"]).stopSignal == "9")
        #expect(try apply(["STOPSIGNAL term"]).stopSignal == "term")
        #expect(try apply(["STOPSIGNAL SIGRTMIN+3"]).stopSignal == "SIGRTMIN+3")
        #expect(throws: AtollError.self) { try apply(["STOPSIGNAL SIGNOPE"]) }
        #expect(throws: AtollError.self) { try apply(["STOPSIGNAL 0"]) }
    }

    @Test func volumeTakesJSONOrAList() throws {
        #expect(try apply([#"VOLUME ["/data", "/my logs"]"#]).volumes.map { Set($0.keys) } == ["/data", "/my logs"])
        #expect(try apply(["VOLUME /a /b"]).volumes.map { Set($0.keys) } == ["/a", "/b"])
        #expect(throws: AtollError.self) { try apply([#"VOLUME [""]"#]) }
    }

    @Test func onBuildKeepsTheTriggerAndRefusesChains() throws {
        let c = try apply(["ONBUILD RUN echo hi", "ONBUILD COPY . /src"])
        #expect(c.onBuild == ["RUN echo hi", "COPY . /src"])
        for bad in ["ONBUILD ONBUILD RUN x", "ONBUILD FROM scratch", "ONBUILD maintainer me"] {
            #expect(throws: AtollError.self, "\(bad)") { try apply([bad]) }
        }
    }

    @Test func healthcheckParsesFlagsAndForms() throws {
        let shell = try apply([
            "HEALTHCHECK --interval=5s --timeout=1m30s --start-period=500ms --retries=3 CMD curl -f http://localhost/ || exit 1"
        ])
        #expect(shell.healthcheck?.test == ["CMD-SHELL", "curl -f http://localhost/ || exit 1"])
        #expect(shell.healthcheck?.interval == 5_000_000_000)
        #expect(shell.healthcheck?.timeout == 90_000_000_000)
        #expect(shell.healthcheck?.startPeriod == 500_000_000)
        #expect(shell.healthcheck?.retries == 3)
        #expect(try apply([#"HEALTHCHECK CMD ["/bin/check", "-q"]"#]).healthcheck?.test == ["CMD", "/bin/check", "-q"])
        #expect(try apply(["HEALTHCHECK NONE"]).healthcheck == ImageConfig.Healthcheck(test: ["NONE"]))
        for bad in [
            "HEALTHCHECK --interval=5 CMD x", "HEALTHCHECK --bogus=1 CMD x", "HEALTHCHECK NONE extra",
            "HEALTHCHECK RUN x", "HEALTHCHECK --interval=1us CMD x", "HEALTHCHECK --retries=-1 CMD x",
        ] {
            #expect(throws: AtollError.self, "\(bad)") { try apply([bad]) }
        }
    }

    @Test func unknownInstructionNamesItAndListsTheAllowedOnes() {
        let error = #expect(throws: AtollError.self) { try apply(["FROM busybox"]) }
        let message = error?.message ?? ""
        #expect(message.contains("unknown instruction \"FROM\""))
        #expect(
            message.contains(
                "CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR"))
        #expect(throws: AtollError.self) { try apply(["   "]) }
    }

    @Test func parseGivesTypedChanges() throws {
        #expect(try ConfigChange.parse("CMD a b") == .cmd(.shell("a b")))
        #expect(try ConfigChange.parse(#"ENTRYPOINT ["x"]"#) == .entrypoint(.exec(["x"])))
        #expect(try ConfigChange.parse("ENV A=$B", environment: ["B=2"]) == .env([.init("A", "2")]))
        #expect(try ConfigChange.parse("EXPOSE 53/udp") == .expose(["53/udp"]))
    }

    @Test func goDurationsParse() {
        #expect(GoDuration.parse("1h30m") == 5_400_000_000_000)
        #expect(GoDuration.parse("1.5s") == 1_500_000_000)
        #expect(GoDuration.parse("250us") == 250_000)
        #expect(GoDuration.parse("0") == 0)
        for bad in ["", "5", "s", "1x", "1.s5", "-1s"] {
            #expect(GoDuration.parse(bad) == nil, "\(bad)")
        }
    }
}
