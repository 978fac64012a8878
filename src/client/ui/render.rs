//! The screens as pure functions of state (filled in next).
