/// Atoll's own version, reported by `atoll version` and `atoll info`.
public enum AtollVersion {
    public static let version = "0.1.0"
    public static let apiVersion = "1"
}
