// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Sealbridge test token
/// @notice A plain 18-decimal ERC-20 for tests and local demos of settlement (DESIGN §8).
/// @dev TEST ONLY: `mint` is open to anyone. Never deploy this as a token with real value.
contract TestToken is ERC20 {
    constructor() ERC20("Sealbridge Test Token", "SBT") {}

    /// @notice Mint `amount` to `to`. Unrestricted on purpose: test only.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
