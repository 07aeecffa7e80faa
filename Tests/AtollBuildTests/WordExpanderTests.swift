import AtollCore
import Testing

@testable import AtollBuild

struct WordExpanderTests {
    static let environment = ["A": "alpha", "EMPTY": "", "SPACED": "x y", "HOME": "/root"]
    let expander = WordExpander(environment: WordExpanderTests.environment)

    @Test(arguments: [
        ("$A", "alpha"), ("${A}", "alpha"), ("pre-$A-post", "pre-alpha-post"), ("${A}_1", "alpha_1"),
        ("$A_1", ""), ("$UNSET", ""), ("${UNSET}", ""), ("$", "$"), ("a$", "a$"), ("$/x", "$/x"),
        ("$1", ""), ("$@", ""), ("$$", ""), ("$SPACED", "x y"), ("$HOME/bin", "/root/bin"),
    ])
    func variablesExpand(word: String, expected: String) throws {
        #expect(try expander.expand(word) == expected)
    }

    @Test(arguments: [
        ("${A:-d}", "alpha"), ("${EMPTY:-d}", "d"), ("${UNSET:-d}", "d"),
        ("${A-d}", "alpha"), ("${EMPTY-d}", ""), ("${UNSET-d}", "d"),
        ("${A:+s}", "s"), ("${EMPTY:+s}", ""), ("${UNSET:+s}", ""),
        ("${A+s}", "s"), ("${EMPTY+s}", "s"), ("${UNSET+s}", ""),
        ("${A:?gone}", "alpha"), ("${EMPTY?gone}", ""),
        ("${UNSET:-${A}}", "alpha"), ("${UNSET:-$HOME/x}", "/root/x"), ("${UNSET:-\"x } y\"}", "x } y"),
        ("${UNSET:-'$A'}", "$A"), ("${UNSET:-a\\}b}", "a}b"), ("${UNSET:-}", ""),
    ])
    func modifiersChooseBetweenTheValueAndTheWord(word: String, expected: String) throws {
        #expect(try expander.expand(word) == expected)
    }

    @Test(arguments: [
        ("'a $A \\n'", "a $A \\n"), ("\"a $A\"", "a alpha"), ("'a'\"b\"c", "abc"), ("\"it's\"", "it's"),
        ("\"a\\\"b\"", "a\"b"), ("\"\\$A\"", "$A"), ("\"\\\\\"", "\\"), ("\"\\d\"", "\\d"), ("\"\"", ""),
        ("a\\ b", "a b"), ("\\$A", "$A"), ("\\'", "'"), ("trailing\\", "trailing"), ("c:\\\\dir", "c:\\dir"),
    ])
    func quotesAndEscapesAreRemoved(word: String, expected: String) throws {
        #expect(try expander.expand(word) == expected)
    }

    @Test(arguments: [
        ("`$A", "$A"), ("c:\\dir\\", "c:\\dir\\"), ("\"a`\"b\"", "a\"b"), ("a` b", "a b"), ("\"``\"", "`"),
        ("\"\\d\"", "\\d"), ("$A`$A", "alpha$A"),
    ])
    func aBacktickEscapesWithTheEscapeDirective(word: String, expected: String) throws {
        #expect(try WordExpander(environment: Self.environment, escape: "`").expand(word) == expected)
    }

    @Test(arguments: [
        ("'abc", "invalid word \"'abc\": missing closing single quote"),
        ("\"abc", "invalid word \"\\\"abc\": missing closing double quote"),
        ("${A", "invalid word \"${A\": missing '}'"),
        ("${A:-x", "invalid word \"${A:-x\": missing '}'"),
        ("${", "invalid word \"${\": missing '}'"),
        ("${}", "invalid word \"${}\": bad substitution"),
        ("${:-x}", "invalid word \"${:-x}\": bad substitution"),
        ("${ A}", "invalid word \"${ A}\": bad substitution"),
        ("${A#x}", "invalid word \"${A#x}\": unsupported modifier \"#\" in substitution"),
        ("${A:=x}", "invalid word \"${A:=x}\": unsupported modifier \"=\" in substitution"),
        ("${UNSET:?must be set}", "invalid word \"${UNSET:?must be set}\": UNSET: must be set"),
        ("${EMPTY:?}", "invalid word \"${EMPTY:?}\": EMPTY: is not allowed to be empty"),
        ("${UNSET?}", "invalid word \"${UNSET?}\": UNSET: is not allowed to be unset"),
    ])
    func malformedWordsFailNamingTheWord(word: String, message: String) {
        #expect(throws: AtollError.self) { try expander.expand(word) }
        do {
            _ = try expander.expand(word)
        } catch let error as AtollError {
            #expect(error.message == message)
        } catch {
            Issue.record("not an AtollError: \(error)")
        }
    }

    @Test func wordsSplitOnUnquotedBlanksThenExpandEach() throws {
        #expect(
            try expander.words("a  \"b c\" 'd  e'\t$SPACED x\\ y ${UNSET:-\"1 2\"} $EMPTY")
                == ["a", "b c", "d  e", "x y", "x y", "1 2", ""])
        #expect(try expander.words("  ") == [])
        #expect(try WordExpander(environment: [:], escape: "`").words("a` b c:\\x") == ["a b", "c:\\x"])
    }
}
