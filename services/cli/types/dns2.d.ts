// The parts of dns2 (which ships no types) that the CLI tests use to run a real DNS server.
declare module 'dns2' {
  import type { EventEmitter } from 'node:events';

  interface Question {
    name: string;
    type: number;
    class: number;
  }
  interface Answer {
    name: string;
    type: number;
    class: number;
    ttl: number;
    data?: string | string[];
    address?: string;
  }
  interface DnsPacket {
    header: { id: number; rcode?: number };
    questions: Question[];
    answers: Answer[];
  }
  interface Server extends EventEmitter {
    listen(options: { udp?: { port: number; address?: string }; tcp?: { port: number; address?: string } }): Promise<void>;
    addresses(): { udp?: { port: number; address: string } };
    close(): Promise<void>;
  }
  interface DNS2 {
    createServer(options: {
      udp?: boolean;
      tcp?: boolean;
      handle: (request: DnsPacket, send: (response: DnsPacket) => void, rinfo: unknown) => void;
    }): Server;
    Packet: {
      TYPE: Record<'A' | 'TXT' | 'AAAA' | 'CNAME' | 'MX' | 'NS' | 'SOA', number>;
      CLASS: Record<'IN' | 'ANY', number>;
      RCODE?: Record<string, number>;
      createResponseFromRequest(request: DnsPacket): DnsPacket;
    };
  }
  const dns2: DNS2;
  export default dns2;
}
