/** The password policy and hasher live in the service kit, shared with the CLI. */
export { ARGON2_DEFAULTS, PasswordHasher, argon2Parameters, passwordSchema, type Argon2Parameters } from '../../shared/src/passwords.js';
