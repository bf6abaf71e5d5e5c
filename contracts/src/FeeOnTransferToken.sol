// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Fee-on-transfer test token
/// @notice TEST ONLY: an ERC-20 that burns 1% of every transfer, so the recipient receives less than
///         the amount sent. Settlement must credit what arrived, not what was asked for.
contract FeeOnTransferToken is ERC20 {
    /// @notice Fee in basis points of every transfer (100 = 1%).
    uint256 public constant FEE_BPS = 100;

    constructor() ERC20("Sealbridge Fee Token", "SBF") {}

    /// @notice Mint `amount` to `to`. Unrestricted on purpose: test only.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = value * FEE_BPS / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
