import Foundation

/// The exec form of Dockerfile arguments: a JSON array of strings (`["sh", "-c", "x"]`). Anything
/// else, even text starting with `[`, is not one (Docker then takes the shell form).
enum JSONStringArray {
    static func parse(_ text: String) -> [String]? {
        guard text.unicodeScalars.first == "[" else { return nil }
        return try? JSONDecoder().decode([String].self, from: Data(text.utf8))
    }
}
