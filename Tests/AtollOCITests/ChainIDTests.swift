import AtollCore
import Testing

@testable import AtollOCI

@Suite struct ChainIDTests {
    // Expected values computed with the shell:
    //   printf 'sha256:aaa… sha256:bbb…' | sha256sum
    //   printf 'sha256:<that> sha256:ccc…' | sha256sum
    @Test func chainIDsMatchValuesComputedBySha256sum() throws {
        let a = try Digest(hex: String(repeating: "a", count: 64))
        let b = try Digest(hex: String(repeating: "b", count: 64))
        let c = try Digest(hex: String(repeating: "c", count: 64))
        let ids = ChainID.chainIDs([a, b, c])
        #expect(ids.count == 3)
        #expect(ids[0] == a)
        #expect(ids[1].hex == "ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c")
        #expect(ids[2].hex == "c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588")
        #expect(ChainID.chainID([a, b, c]) == ids[2])
    }

    @Test func noLayersGiveNoChainIDs() {
        #expect(ChainID.chainIDs([]).isEmpty)
        #expect(ChainID.chainID([]) == nil)
    }
}
