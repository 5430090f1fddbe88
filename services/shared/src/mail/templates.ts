/** A mail's content; the mailer adds sender and recipient. */
export interface MailContent {
  subject: string;
  text: string;
}

/**
 * A mailed link: `path` under the public base URL (which may itself carry a path, hence the
 * trailing slash), with the single-use token as the `token` query parameter.
 */
export function mailedLink(publicUrl: string, path: string, token: string): string {
  const url = new URL(path, publicUrl.endsWith('/') ? publicUrl : `${publicUrl}/`);
  url.searchParams.set('token', token);
  return url.toString();
}

/** The paths mailed links open; the auth service and the CLI mail the same ones. */
export const MAILED_PATHS = {
  verifyEmail: 'verify-email',
  passwordReset: 'password-reset',
  acceptInvitation: 'invitations/accept',
} as const;

export const verificationMail = (url: string): MailContent => ({
  subject: 'Verify your email address',
  text: `Confirm your email address by opening this link:\n\n${url}\n\nThe link expires in 48 hours.`,
});

export const invitationMail = (tenantName: string, url: string): MailContent => ({
  subject: `You are invited to ${tenantName}`,
  text: `You have been invited to join ${tenantName}.\n\nAccept the invitation:\n\n${url}\n\nThe link expires in 7 days and works once.`,
});

export const passwordResetMail = (url: string): MailContent => ({
  subject: 'Reset your password',
  text: `Set a new password by opening this link:\n\n${url}\n\nThe link expires in one hour and works once. If you did not ask for this, ignore this mail.`,
});
