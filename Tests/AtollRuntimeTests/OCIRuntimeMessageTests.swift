import Testing

@testable import AtollRuntime

@Suite struct OCIRuntimeMessageTests {
    @Test func runcsLogLineGivesItsMessage() {
        let output =
            #"time="2026-01-01T00:00:00Z" level=error msg="exec: \"nope\": executable file not found in $PATH""#
        #expect(OCIRuntime.message(from: output) == #"exec: "nope": executable file not found in $PATH"#)
    }

    @Test func crunsMissingCommandIsWordedAsRuncAndDockerWordIt() {
        let output = "executable file `nope` not found in $PATH: No such file or directory\n"
        let message = OCIRuntime.message(from: output)
        #expect(message == #"exec: "nope": executable file not found in $PATH"#)
        #expect(RuntimeFailure(message: output).exitStatus == 127)
    }

    @Test func otherMessagesPassAsTheyAre() {
        #expect(
            OCIRuntime.message(from: "open `/etc/passwd`: Permission denied") == "open `/etc/passwd`: Permission denied"
        )
        #expect(OCIRuntime.message(from: "` not found in $PATH before executable file `x") != "")
        #expect(OCIRuntime.message(from: "") == "no output")
    }
}
