import AtollCore

/// A parsed Dockerfile: the `ARG`s declared before the first `FROM`, then its stages in order.
/// Words stay as written (quotes, `$VAR`s and escapes included) wherever Docker expands variables
/// at build time; the builder expands them with the stage's environment as it goes.
public struct Dockerfile: Sendable, Equatable {
    /// The `# syntax=` directive, if any (recorded; Atoll has one frontend).
    public var syntax: String?
    /// The escape character (`# escape=` directive): a backslash or a backtick.
    public var escape: Character
    /// `ARG`s before the first `FROM`: usable in `FROM` lines, and redeclared in a stage to be
    /// used inside it.
    public var metaArgs: [ArgDeclaration]
    public var stages: [Stage]

    public init(
        syntax: String? = nil, escape: Character = "\\", metaArgs: [ArgDeclaration] = [], stages: [Stage] = []
    ) {
        self.syntax = syntax
        self.escape = escape
        self.metaArgs = metaArgs
        self.stages = stages
    }
}

/// One `FROM` and the instructions under it.
public struct Stage: Sendable, Equatable {
    /// Position in the file, from 0.
    public var index: Int
    /// The `AS` name, lower-cased; nil when unnamed.
    public var name: String?
    /// The base as written (`busybox:latest`, `$BASE`, `scratch`, or an earlier stage's name).
    public var base: String
    /// `FROM --platform=…` as written.
    public var platform: String?
    /// The line of the `FROM`.
    public var line: Int
    public var instructions: [Instruction]

    public init(
        index: Int, name: String? = nil, base: String, platform: String? = nil, line: Int,
        instructions: [Instruction] = []
    ) {
        self.index = index
        self.name = name
        self.base = base
        self.platform = platform
        self.line = line
        self.instructions = instructions
    }
}

/// One instruction with where it came from.
public struct Instruction: Sendable, Equatable {
    /// The line the instruction starts on, from 1.
    public var line: Int
    /// The instruction as written, continuation lines joined as Docker joins them (the escape
    /// character and line end removed, the lines concatenated), comment lines and heredoc bodies
    /// left out, trimmed (`RUN apt-get update && apt-get install -y x`): recorded in the image
    /// history and shown in progress and errors.
    public var text: String
    public var command: Command

    public init(line: Int, text: String, command: Command) {
        self.line = line
        self.text = text
        self.command = command
    }
}

/// What an instruction does.
public enum Command: Sendable, Equatable {
    case run(RunCommand)
    case copy(CopyCommand)
    case add(CopyCommand)
    case arg([ArgDeclaration])
    /// `SHELL ["executable", "parameters"]`.
    case shell([String])
    /// An instruction that only edits the image config: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
    /// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR. The value is the instruction's text for
    /// `ConfigChange.parse(_:environment:)` (keyword first), which expands it at build time.
    case config(String)
    /// `MAINTAINER name` (deprecated; sets the image's author).
    case maintainer(String)
}

/// A command in exec form (a JSON array) or shell form (run through the stage's `SHELL`).
public enum CommandForm: Sendable, Equatable, Hashable {
    case exec([String])
    case shell(String)
}

/// `RUN [--network=…] command`, with the bodies of any heredocs it names.
public struct RunCommand: Sendable, Equatable {
    public var form: CommandForm
    /// Heredocs in the order they appear (`RUN <<EOF` …). A shell-form RUN whose command is only
    /// `<<EOF` runs the first heredoc's body as a script; otherwise bodies are fed to the
    /// command's stdin, as BuildKit does.
    public var heredocs: [Heredoc]
    /// `--network=default|none|host`, when given.
    public var network: String?

    public init(form: CommandForm, heredocs: [Heredoc] = [], network: String? = nil) {
        self.form = form
        self.heredocs = heredocs
        self.network = network
    }
}

/// `COPY`/`ADD [--from=…] [--chown=…] [--chmod=…] [--link] src… dest`.
public struct CopyCommand: Sendable, Equatable {
    /// Source paths or patterns as written (unexpanded); for a heredoc source, its name.
    public var sources: [String]
    /// The destination as written (unexpanded). Ends in `/` when it must be a directory.
    public var destination: String
    /// `--from=` a stage name or index, or an image reference (as written).
    public var from: String?
    public var chown: String?
    public var chmod: String?
    /// `--link` (accepted; every COPY already makes its own layer).
    public var link: Bool
    /// Heredoc sources (`COPY <<EOF /etc/x`): each becomes a file with its body as content.
    public var heredocs: [Heredoc]

    public init(
        sources: [String], destination: String, from: String? = nil, chown: String? = nil, chmod: String? = nil,
        link: Bool = false, heredocs: [Heredoc] = []
    ) {
        self.sources = sources
        self.destination = destination
        self.from = from
        self.chown = chown
        self.chmod = chmod
        self.link = link
        self.heredocs = heredocs
    }
}

/// A heredoc body (`<<EOF`, `<<-EOF`, `<<"EOF"`).
public struct Heredoc: Sendable, Equatable {
    /// The delimiter word, quotes removed.
    public var name: String
    /// The body, each line ending in "\n"; with `<<-`, leading tabs already removed.
    public var content: String
    /// False when the delimiter was quoted: the body is taken literally, without expansion.
    public var expands: Bool

    public init(name: String, content: String, expands: Bool) {
        self.name = name
        self.content = content
        self.expands = expands
    }
}

/// `ARG NAME[=default]`: `defaultValue` as written (unexpanded), nil without `=`.
public struct ArgDeclaration: Sendable, Equatable {
    public var name: String
    public var defaultValue: String?

    public init(name: String, defaultValue: String? = nil) {
        self.name = name
        self.defaultValue = defaultValue
    }
}
