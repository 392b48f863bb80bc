// Who may run admin commands on Slack: workspace admins and owners (users.info), plus SLACK_ADMIN_USERS.
import type { App } from '@slack/bolt';
import type { Logger } from '../../log.ts';
import { BoundedMap } from '../../util/bounded-map.ts';
import { errorCode } from './messages.ts';

const CACHE_MS = 5 * 60_000;

export class SlackAdmins {
  private cache = new BoundedMap<string, { admin: boolean; until: number }>(5000);

  constructor(
    private readonly configured: Set<string>,
    private readonly client: App['client'],
    private readonly log: Logger,
  ) {}

  async isAdmin(userId: string): Promise<boolean> {
    if (this.configured.has(userId)) return true;
    const hit = this.cache.get(userId);
    if (hit && hit.until > Date.now()) return hit.admin;
    try {
      const { user } = await this.client.users.info({ user: userId });
      const admin = Boolean(user?.is_admin || user?.is_owner || user?.is_primary_owner);
      this.cache.set(userId, { admin, until: Date.now() + CACHE_MS });
      return admin;
    } catch (err) {
      // Not knowing means no admin rights; the user can retry.
      this.log.warn({ userId, err: errorCode(err) }, 'users.info failed; treating user as non-admin');
      return false;
    }
  }
}
