/// Random identifiers in Docker's shape: 64 lower-case hex digits, shown shortened to 12.
public enum Identifier {
    public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}
