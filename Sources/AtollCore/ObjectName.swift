/// Names of containers and volumes as Docker allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
public enum ObjectName {
    public static func isValid(_ name: String) -> Bool {
        func alphanumeric(_ scalar: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
        }
        guard let first = name.unicodeScalars.first, alphanumeric(first), name.unicodeScalars.count >= 2 else {
            return false
        }
        return name.unicodeScalars.allSatisfy { alphanumeric($0) || "_.-".unicodeScalars.contains($0) }
    }
}
