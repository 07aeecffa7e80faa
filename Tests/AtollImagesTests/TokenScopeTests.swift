import Testing

@testable import AtollImages

struct TokenScopeTests {
    @Test func aTokenIsAskedForTheChallengesScopesAndTheClientsOwnOnce() {
        let scopes = DistributionClient.tokenScopes(
            challenge: "repository:b/c:pull,push repository:a/b:pull",
            own: ["repository:b/c:pull,push", "repository:x/y:pull"])
        #expect(scopes == ["repository:b/c:pull,push", "repository:a/b:pull", "repository:x/y:pull"])
        #expect(DistributionClient.tokenScopes(challenge: nil, own: []) == [])
    }

    @Test func challengesAreParsedIntoTheirParameters() {
        let parameters = DistributionClient.challengeParameters(
            #"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#)
        #expect(parameters["realm"] == "https://auth.example/token")
        #expect(parameters["service"] == "registry.example")
        #expect(parameters["scope"] == "repository:a/b:pull,push")
        #expect(DistributionClient.challengeParameters(#"Basic realm="x""#) == ["realm": "x"])
    }
}
