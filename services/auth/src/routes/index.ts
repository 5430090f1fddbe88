import type { Operation } from '../http.js';
import { createApiKey, exchangeApiKey, listApiKeys, revokeApiKey } from './api-keys.js';
import { confirmPasswordReset, requestPasswordReset, resendVerification, verifyEmail } from './email.js';
import { acceptInvitation, createInvitation, listInvitations, resendInvitation, revokeInvitation } from './invitations.js';
import { addMember, listMembers, removeMember, transferOwnership, updateMember } from './members.js';
import { staffImpersonate, staffListMembers, staffListTenants } from './staff.js';
import { jwks, login, logout, me, refresh, signup, switchTenant, tenants } from './session.js';

/** Every operation of the service. Static paths before parameterised ones. */
export const OPERATIONS: readonly Operation[] = [
  jwks,
  signup,
  login,
  refresh,
  logout,
  me,
  tenants,
  switchTenant,
  listMembers,
  addMember,
  transferOwnership,
  updateMember,
  removeMember,
  createApiKey,
  listApiKeys,
  revokeApiKey,
  exchangeApiKey,
  acceptInvitation,
  createInvitation,
  listInvitations,
  resendInvitation,
  revokeInvitation,
  verifyEmail,
  resendVerification,
  requestPasswordReset,
  confirmPasswordReset,
  staffListTenants,
  staffListMembers,
  staffImpersonate,
];
