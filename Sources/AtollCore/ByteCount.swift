/// Sizes as Docker's flags spell them: a number with an optional b, k, m or g (kb, mb, gb too;
/// powers of 1024), e.g. "512m", "1.5g", "65536k".
public enum ByteCount {
    /// The number of bytes, or nil when `text` is not a size.
    public static func parse(_ text: String) -> Int64? {
        let lower = text.lowercased()
        let units: [(String, Int64)] = [
            ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1),
        ]
        var number = lower
        var multiplier: Int64 = 1
        for (suffix, value) in units where lower.hasSuffix(suffix) {
            number = String(lower.dropLast(suffix.count))
            multiplier = value
            break
        }
        guard let value = Double(number), value >= 0, value * Double(multiplier) < 9e18 else { return nil }
        return Int64(value * Double(multiplier))
    }
}
