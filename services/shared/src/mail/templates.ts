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

/** Billing mails to a tenant's owners: each names what to do and where. */
export interface InvoiceNotice {
  amountDue: number;
  currency: string;
  /** Stripe's page to pay the invoice (or confirm the payment), when it has one. */
  invoiceUrl: string | null;
}

const money = (amount: number, currency: string): string => `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;
const payHere = (invoiceUrl: string | null): string => (invoiceUrl ? `\n\nPay the invoice here:\n\n${invoiceUrl}` : '');

export const paymentFailedMail = (tenantName: string, notice: InvoiceNotice & { nextAttempt: Date | null; graceDays: number }): MailContent => ({
  subject: `Payment failed for ${tenantName}`,
  text:
    `We could not collect ${money(notice.amountDue, notice.currency)} for ${tenantName}.` +
    (notice.nextAttempt ? ` We will try again on ${notice.nextAttempt.toISOString().slice(0, 10)}.` : '') +
    ` If the invoice stays unpaid for ${notice.graceDays} days, ${tenantName} is suspended until it is paid;` +
    ` owners can still sign in and update the payment method in the billing portal.` +
    payHere(notice.invoiceUrl),
});

export const paymentActionRequiredMail = (tenantName: string, notice: InvoiceNotice): MailContent => ({
  subject: `Confirm the payment for ${tenantName}`,
  text:
    `Your bank asks you to confirm the payment of ${money(notice.amountDue, notice.currency)} for ${tenantName}` +
    ` before it can go through.` +
    payHere(notice.invoiceUrl),
});

export const trialWillEndMail = (tenantName: string, trialEnd: Date | null): MailContent => ({
  subject: `The trial of ${tenantName} ends soon`,
  text:
    `The trial of ${tenantName} ends${trialEnd ? ` on ${trialEnd.toISOString().slice(0, 10)}` : ' soon'}.` +
    ` Add a payment method in the billing portal to keep your plan; without one the subscription is paused` +
    ` and ${tenantName} moves to the free plan.`,
});

/** To a tenant's owners when its API requests reach 80 % or 100 % of the month's quota. */
export interface QuotaNotice {
  thresholdPercent: 80 | 100;
  used: number;
  quota: number;
  /** When the monthly quota starts again (00:00 UTC on the 1st of the next month). */
  resetsAt: Date;
}

export const quotaMail = (tenantName: string, notice: QuotaNotice): MailContent => {
  const resets = `${notice.resetsAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const reached = notice.thresholdPercent >= 100;
  return {
    subject: reached ? `${tenantName} has used its monthly API quota` : `${tenantName} has used ${notice.thresholdPercent} % of its monthly API quota`,
    text:
      `${tenantName} has made ${notice.used} of its ${notice.quota} API requests this month (${notice.thresholdPercent} %).` +
      (reached ? ' Further requests are refused with 429 quota_exceeded' : ' At 100 % further requests are refused with 429 quota_exceeded') +
      ` until the quota resets on ${resets}.` +
      ' Upgrade the plan in the billing settings to raise the quota now.',
  };
};
