// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title Sealbridge governance timelock
/// @notice OpenZeppelin 5 `TimelockController`, unchanged, compiled into our artifacts so that
///         `sealbridge deploy` deploys it from the same pinned toolchain as the other contracts. It
///         holds every administrative role of the registry and the settlement contract; its delay is
///         longer than the settlement's `exitDelay`, so participants can leave before a scheduled
///         change takes effect (DESIGN §8, "Governance").
/// @dev `admin` should be zero: the timelock then administers itself (OpenZeppelin's recommendation).
contract SealbridgeTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
