"""People: accounts and roles, logins, passwords, API tokens, and the scope a user sees."""
