import type { Operation } from '../http.js';
import { checkout } from './checkout.js';
import { getEntitlements } from './entitlements.js';
import { portal } from './portal.js';
import { getSubscription } from './subscription.js';
import { getUsage } from './usage.js';
import { stripeWebhook } from './webhooks.js';

/** Every billing operation of the service (the meta routes are the app's). */
export const OPERATIONS: readonly Operation[] = [checkout, portal, getSubscription, getEntitlements, getUsage, stripeWebhook];
