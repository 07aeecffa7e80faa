import AtollCore
import Foundation

/// Chain IDs, which name a stack of layers: ChainID(L0) = DiffID(L0) and
/// ChainID(L0|…|Ln) = sha256(ChainID(L0|…|Ln-1) + " " + DiffID(Ln)), per the OCI image spec.
public enum ChainID {
    /// The chain ID of every prefix of the stack: element i names layers 0 through i.
    public static func chainIDs(_ diffIDs: [Digest]) -> [Digest] {
        var result: [Digest] = []
        result.reserveCapacity(diffIDs.count)
        for diffID in diffIDs {
            if let parent = result.last {
                result.append(Digest.sha256(of: Array("\(parent) \(diffID)".utf8)))
            } else {
                result.append(diffID)
            }
        }
        return result
    }

    /// The chain ID of the whole stack, or nil for no layers.
    public static func chainID(_ diffIDs: [Digest]) -> Digest? { chainIDs(diffIDs).last }
}
