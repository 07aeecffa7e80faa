import AtollCLI

await Atoll.run(arguments: Array(CommandLine.arguments.dropFirst()))
